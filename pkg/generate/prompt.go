package generate

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// PromptOptions are mlx_lm generate's prompt settings.
type PromptOptions struct {
	Prompt string
	// SystemPrompt, when not "", is a system message before the prompt.
	SystemPrompt string
	// PrefillResponse, when not "", is an assistant message the model
	// continues (the template is rendered with continue_final_message).
	PrefillResponse string
	// IgnoreChatTemplate encodes the raw prompt (with special tokens unless
	// it already starts with the BOS string).
	IgnoreChatTemplate bool
	// TemplateKwargs are extra template variables (--chat-template-config).
	TemplateKwargs map[string]json.RawMessage
	// CachedPrefix says a prompt cache already holds the conversation's
	// start: only the text from the last message's content on is encoded
	// (mlx_lm finds it by rendering a "<query>" placeholder).
	CachedPrefix bool
}

// EncodePrompt turns a prompt into token ids as mlx_lm's generate does:
// with a chat template (and IgnoreChatTemplate off) the messages
// [system?, user, assistant-prefill?] are rendered with
// add_generation_prompt (or continue_final_message for a prefill) and
// encoded without special tokens; otherwise the prompt is encoded with
// special tokens, unless it already starts with the BOS string.
func EncodePrompt(tok *tokenizer.Tokenizer, o PromptOptions) ([]int, error) {
	if o.IgnoreChatTemplate || !tok.HasChatTemplate() {
		return EncodeRaw(tok, o.Prompt), nil
	}
	var msgs []tokenizer.Message
	if o.SystemPrompt != "" {
		msgs = append(msgs, tokenizer.Message{Role: "system", Content: o.SystemPrompt})
	}
	msgs = append(msgs, tokenizer.Message{Role: "user", Content: o.Prompt})
	prefill := o.PrefillResponse != ""
	if prefill {
		msgs = append(msgs, tokenizer.Message{Role: "assistant", Content: o.PrefillResponse})
	}
	text, err := ApplyChatTemplate(tok, msgs, !prefill, prefill, o.TemplateKwargs)
	if err != nil {
		return nil, err
	}
	if o.CachedPrefix {
		msgs[len(msgs)-1].Content = "<query>"
		probe, err := ApplyChatTemplate(tok, msgs, !prefill, prefill, o.TemplateKwargs)
		if err != nil {
			return nil, err
		}
		i := strings.Index(probe, "<query>")
		if i < 0 || i > len(text) {
			return nil, fmt.Errorf("the chat template does not render the message content verbatim, so the part after the cached prefix cannot be found")
		}
		text = text[i:]
	}
	return tok.Encode(text, false), nil
}

// EncodeRaw encodes text with special tokens unless it already starts with
// the BOS string (mlx_lm's stream_generate rule).
func EncodeRaw(tok *tokenizer.Tokenizer, text string) []int {
	bos := tok.BOSToken()
	return tok.Encode(text, bos == "" || !strings.HasPrefix(text, bos))
}

// ApplyChatTemplate renders messages as mlx_lm's TokenizerWrapper does:
// enable_thinking defaults to whether the vocabulary has think tokens.
func ApplyChatTemplate(tok *tokenizer.Tokenizer, msgs []tokenizer.Message, addGenerationPrompt, continueFinal bool, kwargs map[string]json.RawMessage) (string, error) {
	kw := map[string]json.RawMessage{}
	for k, v := range kwargs {
		kw[k] = v
	}
	if _, ok := kw["enable_thinking"]; !ok {
		kw["enable_thinking"] = json.RawMessage(fmt.Sprint(tok.HasThinking()))
	}
	text, err := tok.ApplyChatTemplate(tokenizer.MessagesJSON(msgs), tokenizer.ChatOptions{
		AddGenerationPrompt:  addGenerationPrompt,
		ContinueFinalMessage: continueFinal,
		Kwargs:               kw,
	})
	if err != nil {
		return "", fmt.Errorf("applying the chat template: %w", err)
	}
	return text, nil
}

// ChatTurn encodes one chat turn as mlx_lm's chat does: the new messages
// only ([system?, user]), with the generation prompt; the earlier turns are
// in the KV cache.
func ChatTurn(tok *tokenizer.Tokenizer, systemPrompt, query string) ([]int, error) {
	if !tok.HasChatTemplate() {
		return EncodeRaw(tok, query), nil
	}
	var msgs []tokenizer.Message
	if systemPrompt != "" {
		msgs = append(msgs, tokenizer.Message{Role: "system", Content: systemPrompt})
	}
	msgs = append(msgs, tokenizer.Message{Role: "user", Content: query})
	text, err := ApplyChatTemplate(tok, msgs, true, false, nil)
	if err != nil {
		return nil, err
	}
	return tok.Encode(text, false), nil
}
