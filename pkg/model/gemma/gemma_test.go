package gemma_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/gemma"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "gemma")
}
