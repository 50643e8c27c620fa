package cmd

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mlxgo/mlxgo/pkg/generate"
	"github.com/mlxgo/mlxgo/pkg/generate/gentest"
	"github.com/mlxgo/mlxgo/pkg/model"
	"github.com/mlxgo/mlxgo/pkg/tokenizer"
)

// reply runs one chat turn with pkg/generate on caches (fresh when nil)
// and returns the text, every token the model produced and the caches.
func reply(t *testing.T, m model.Model, caches []model.Cache, query string, maxTokens int) (string, []int, []model.Cache) {
	t.Helper()
	tok, err := tokenizer.Load(tokenizerFixture)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := generate.ChatTurn(tok, "", query)
	if err != nil {
		t.Fatal(err)
	}
	g, err := generate.New(m, ids, generate.Options{MaxTokens: maxTokens, Caches: caches})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var toks []int
	if err := generate.Stream(context.Background(), g, tok, func(r generate.Response) error {
		text.WriteString(r.Text)
		toks = append(toks, r.Token)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.Commit(); err != nil {
		t.Fatal(err)
	}
	return text.String(), append(ids, toks...), g.Caches()
}

const chatHelp = "The command list:\n- 'q' to exit\n- 'r' to reset the chat\n- 'h' to display these commands\n"

func TestChatScriptedSession(t *testing.T) {
	dir := fakeModelDir(t, 4096)
	code, out, errOut := runWith(t, "hello\nh\nhi\nr\nhi\nq\nnever read\n", "chat", "--model", dir, "-m", "20")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	m := gentest.New(512, 16, 1)
	r1, ids1, caches := reply(t, m, nil, "hello", 20)
	r2, _, _ := reply(t, m, caches, "hi", 20)
	r3, _, _ := reply(t, m, nil, "hi", 20)
	want := "[INFO] Starting chat session with " + dir + ".\n" + chatHelp +
		">> " + r1 + "\n>> " + chatHelp + ">> " + r2 + "\n>> >> " + r3 + "\n>> "
	if out != want {
		t.Fatalf("session output\n%q\nwant\n%q", out, want)
	}
	if r2 == r3 {
		t.Fatalf("the second turn ignores the first (same reply %q with and without history)", r2)
	}
	// History lives in the KV cache: the second turn equals one fresh run
	// over turn 1, its reply (every token) and turn 2.
	tok, _ := tokenizer.Load(tokenizerFixture)
	turn2, _ := generate.ChatTurn(tok, "", "hi")
	g, _ := generate.New(m, append(ids1, turn2...), generate.Options{MaxTokens: 20})
	var fresh strings.Builder
	if err := generate.Stream(context.Background(), g, tok, func(r generate.Response) error { fresh.WriteString(r.Text); return nil }); err != nil {
		t.Fatal(err)
	}
	if fresh.String() != r2 {
		t.Fatalf("second turn %q, a fresh run over the whole conversation %q", r2, fresh.String())
	}
}

func TestChatInterruptStopsReplyOnly(t *testing.T) {
	dir := fakeModelDir(t, 4096)
	sig := make(chan os.Signal, 1)
	old := chatSignals
	chatSignals = func() (<-chan os.Signal, func()) { return sig, func() {} }
	t.Cleanup(func() { chatSignals = old })
	m := gentest.New(512, 16, 1)
	m.OnForward = func(call int) {
		if call == 8 { // the 7th decode step of the first reply
			sig <- os.Interrupt
		}
	}
	fakeModels.Store(dir, m)
	t.Cleanup(func() { fakeModels.Delete(dir) })

	code, out, errOut := runWith(t, "hello\nhi\nq\n", "chat", "--model", dir, "-m", "200")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	full, _, _ := reply(t, gentest.New(512, 16, 1), nil, "hello", 200)
	re := regexp.MustCompile(`(?s)^\[INFO\][^\n]*\n` + regexp.QuoteMeta(chatHelp) + `>> (.*)\n>> (.*)\n>> $`)
	got := re.FindStringSubmatch(out)
	if got == nil {
		t.Fatalf("session output %q", out)
	}
	if len(got[1]) >= len(full) || !strings.HasPrefix(full, got[1]) || len(got[1]) < 6 {
		t.Fatalf("interrupted reply %q is not a short prefix of the full reply %q", got[1], full)
	}
	if got[2] == "" {
		t.Fatalf("no second reply after the interrupt: %q", out)
	}
}
