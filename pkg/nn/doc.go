// Package nn holds the layers architectures are built from, in mlx.nn's
// terms: Linear and QuantizedLinear, Embedding and QuantizedEmbedding,
// RMSNorm and LayerNorm, RoPE, attention helpers and the MoE switch layers.
//
// Layers are plain structs of *engine.Array fields named after the
// checkpoint's tensor suffixes (weight, bias, scales, biases); pkg/model
// fills them from a checkpoint by dotted name. Quantization is a layer
// swap: a model field of interface type Layer holds a *Linear or a
// *QuantizedLinear, decided at load time, so no architecture forks for it.
//
// Shapes use the project letters: B batch, L sequence, D model dim,
// H heads, Hk kv heads, Dh head dim, V vocab, E experts; "..." is any
// leading dims.
package nn
