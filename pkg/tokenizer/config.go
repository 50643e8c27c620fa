package tokenizer

// tokenizerConfig is what we read from tokenizer_config.json and friends.
type tokenizerConfig struct{}

func (t *Tokenizer) finish() {}

// Load loads a tokenizer from a model directory.
func Load(dir string) (*Tokenizer, error) { return LoadFile(dir + "/tokenizer.json") }
