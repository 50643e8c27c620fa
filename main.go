// Command mlxgo runs, chats with, fine-tunes, fuses and converts large
// language models, compatible with Apple's mlx_lm, as one static binary.
package main

import (
	"os"

	"github.com/mlxgo/mlxgo/cmd"
)

func main() {
	os.Exit(cmd.Execute())
}
