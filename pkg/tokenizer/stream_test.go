package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func streamAll(d Detokenizer, ids []int) (string, []string) {
	d.Reset()
	var segs []string
	for _, id := range ids {
		d.Add(id)
		segs = append(segs, d.LastSegment())
	}
	d.Finalize()
	segs = append(segs, d.LastSegment())
	return strings.Join(segs, ""), segs
}

func TestStreamingEqualsFullDecode(t *testing.T) {
	wantKind := map[string]string{"qwen3": "*tokenizer.bpeDetok", "llama3": "*tokenizer.bpeDetok", "deepseek_v3": "*tokenizer.bpeDetok",
		"gpt4o": "*tokenizer.bpeDetok", "llama2": "*tokenizer.spmDetok", "gemma3": "*tokenizer.spmDetok"}
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			g := readGolden(t, name)
			tk := realTokenizer(t, name)
			if got := fmt.Sprintf("%T", tk.NewDetokenizer()); got != wantKind[name] {
				t.Errorf("NewDetokenizer is %s, want %s (mlx_lm's choice)", got, wantKind[name])
			}
			for _, mk := range []func() Detokenizer{tk.NewDetokenizer, tk.NewNaiveDetokenizer} {
				d := mk()
				var all []int
				for _, c := range g.Cases {
					all = append(all, c.IDs...)
					text, segs := streamAll(d, c.IDs)
					if want := tk.Decode(c.IDs, false); text != want {
						t.Errorf("%T on %q: streamed %q, full decode %q", d, c.Text, text, want)
					}
					if d.Text() != text {
						t.Errorf("%T: Text() %q != segments %q", d, d.Text(), text)
					}
					for _, s := range segs {
						if !utf8.ValidString(s) {
							t.Errorf("%T on %q: segment %q splits a character", d, c.Text, s)
						}
					}
				}
				// One long stream of every case back to back.
				text, _ := streamAll(d, all)
				if want := tk.Decode(all, false); text != want {
					t.Errorf("%T on the concatenated stream differs from full decode", d)
				}
			}
		})
	}
}

// TestRoundTripRandom checks on random text mixing every character class
// the pre-tokenizers care about (and special-token look-alikes) that
// decoding gives the text back and that streaming equals the full decode.
// The byte-level tokenizers are lossless (Qwen3 up to NFC). The
// SentencePiece ones are too except where HF's are not: a literal "▁"
// decodes as a space, and Llama 2's normalizer prepends "▁" to the text after
// each added token, so "<s>x" decodes as "<s> x"; those inputs are left out.
func TestRoundTripRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	extra := []string{"<|im_start|>", "<s>", "<bos>", "<|endoftext|>", "<｜User｜>", "  ", "\n\n", "▁", "<0x41>"}
	for _, name := range goldenNames {
		t.Run(name, func(t *testing.T) {
			tk := realTokenizer(t, name)
			d := tk.NewDetokenizer()
			for range 300 {
				s := randomText(r)
				if r.IntN(3) == 0 {
					e := extra[r.IntN(len(extra))]
					spm := name == "llama2" || name == "gemma3"
					if !(spm && e == "▁") && !(name == "llama2" && e == "<s>") {
						s += e + randomText(r)
					}
				}
				ids := tk.Encode(s, false)
				want := s
				if name == "qwen3" {
					want = norm.NFC.String(s)
				}
				if got := tk.Decode(ids, false); got != want {
					t.Errorf("Decode(Encode(%q)) = %q", s, got)
					continue
				}
				if text, _ := streamAll(d, ids); text != want {
					t.Errorf("stream of %q = %q", s, text)
				}
			}
		})
	}
}

// FuzzEncode: encoding never panics, and on valid UTF-8 a byte-level
// tokenizer gives the (NFC) text back and streams it identically.
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"Hello world", "I'm  \n\n x", "<|im_start|>a", "中文 😀", "\xff\xfe"} {
		f.Add(s)
	}
	tk := realTokenizer(f, "qwen3")
	spm := realTokenizer(f, "llama2")
	f.Fuzz(func(t *testing.T, s string) {
		ids := tk.Encode(s, true)
		spm.Encode(s, true)
		if !utf8.ValidString(s) {
			return
		}
		want := norm.NFC.String(s)
		if got := tk.Decode(ids, false); got != want {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
		if got, _ := streamAll(tk.NewDetokenizer(), ids); got != want {
			t.Fatalf("stream(%q) = %q", s, got)
		}
	})
}
