package qwen3_test

import (
	"testing"

	"github.com/mlxgo/mlxgo/pkg/model/modeltest"

	_ "github.com/mlxgo/mlxgo/pkg/model/qwen3"
)

func TestFixtures(t *testing.T) {
	modeltest.RunF32AndBF16(t, "qwen3")
}
