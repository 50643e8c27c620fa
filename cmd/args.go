package cmd

import "strings"

// nargsFlags take one or more values like argparse's nargs="+":
// `--extra-eos-token a b` becomes `--extra-eos-token a --extra-eos-token b`.
var nargsFlags = map[string]bool{"--extra-eos-token": true}

// longShorthands are argparse's multi-letter short options, which pflag
// cannot declare.
var longShorthands = map[string]string{"-qa": "--quantize-activations"}

// normalizeArgs rewrites argparse-only spellings into ones cobra parses.
func normalizeArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if long, ok := longShorthands[a]; ok {
			a = long
		}
		if nargsFlags[a] {
			j := i + 1
			for ; j < len(args) && !strings.HasPrefix(args[j], "-"); j++ {
				out = append(out, a, args[j])
			}
			if j == i+1 {
				out = append(out, a) // no value: let cobra report it
			}
			i = j - 1
			continue
		}
		out = append(out, a)
	}
	return out
}
