package tokenizer

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
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
