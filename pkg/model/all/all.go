// Package all links every architecture into a binary: import it for its
// side effect (each architecture registers itself with pkg/model).
package all

import (
	_ "github.com/mlxgo/mlxgo/pkg/model/deepseek_v3"
	_ "github.com/mlxgo/mlxgo/pkg/model/gemma"
	_ "github.com/mlxgo/mlxgo/pkg/model/gemma2"
	_ "github.com/mlxgo/mlxgo/pkg/model/gemma3_text"
	_ "github.com/mlxgo/mlxgo/pkg/model/glm4_moe"
	_ "github.com/mlxgo/mlxgo/pkg/model/gpt_oss"
	_ "github.com/mlxgo/mlxgo/pkg/model/granite"
	_ "github.com/mlxgo/mlxgo/pkg/model/llama"
	_ "github.com/mlxgo/mlxgo/pkg/model/mixtral"
	_ "github.com/mlxgo/mlxgo/pkg/model/olmo2"
	_ "github.com/mlxgo/mlxgo/pkg/model/phi3"
	_ "github.com/mlxgo/mlxgo/pkg/model/qwen2"
	_ "github.com/mlxgo/mlxgo/pkg/model/qwen3"
	_ "github.com/mlxgo/mlxgo/pkg/model/qwen3_moe"
	_ "github.com/mlxgo/mlxgo/pkg/model/qwen3_next"
	_ "github.com/mlxgo/mlxgo/pkg/model/smollm3"
	_ "github.com/mlxgo/mlxgo/pkg/model/starcoder2"
)
