package tokenizer

import "unicode/utf8"

// GPT-2's reversible byte <-> printable-rune table: bytes that are printable
// Latin-1 map to themselves, the others to runes from U+0100 upwards.
var (
	byteToRune [256]rune
	// runeToByte[r] is the byte of GPT-2 rune r plus one (0: not in the table).
	runeToByte [324]uint16
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		printable := (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
		if printable {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = uint16(b) + 1
	}
}

// byteLevelEncode maps every byte of s to its GPT-2 rune.
func byteLevelEncode(s string) string {
	buf := make([]byte, 0, len(s)*2)
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// byteLevelDecodeToken maps a token's runes back to bytes. A token holding a
// rune outside the table (an added token such as "<｜begin▁of▁sentence｜>")
// contributes its own UTF-8 bytes, as HF tokenizers does.
func byteLevelDecodeToken(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		if r < 0 || int(r) >= len(runeToByte) || runeToByte[r] == 0 {
			return append(dst[:start], tok...)
		}
		dst = append(dst, byte(runeToByte[r]-1))
	}
	return dst
}
