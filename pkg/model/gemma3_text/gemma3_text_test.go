package gemma3text_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/gemma3_text"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "gemma3_text")
}
