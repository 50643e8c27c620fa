// Package model loads language models and runs them: the Model and Cache
// interfaces, the architecture registry, Load, shape-checked weights,
// sanitize plans, rotary settings, quantization config and the KV caches.
//
// # Loading
//
// Load(dir) reads config.json (rejecting "model_file" custom code),
// generation_config.json's eos_token_id, and every model*.safetensors shard
// memory-mapped: tensors are wrapped in place (engine.FromBytes) in their
// stored dtype (bf16/f16/f32, or packed uint32 with scales and biases).
// The architecture's sanitize plan (RegisterSanitize; FullSanitizePlan)
// renames, drops or stacks tensors and runs steps on them (even/odd
// columns or rows, transpose, reshape, slice, add a constant), turning a
// hub checkpoint into mlx_lm's layout. ApplyPlan carries a plan out on
// raw tensor bytes: the loader uses it for every derived tensor, and a
// converter can use it to write mlx_lm's layout (SanitizePlan keeps
// stepped tensors in the checkpoint's layout for consumers that apply
// only copy/stack/row splits). Then the constructor
// registered for the model_type (Register; aliases such as mistral → llama
// in one table) builds the model through a *Weights. Every tensor is
// looked up by its dotted checkpoint name and shape-checked; a tensor no
// layer takes is an error, as mlx_lm's strict load_weights. LoadOptions
// can compute in another dtype (float32 activations over bf16 weights) or
// run quantized layers through their dequantized weights (a reference
// mode: the quantized CPU kernels round activations to int8).
// NewConfig + FromTensors or RandomModel build models in memory.
//
// # Adding an architecture
//
// pkg/model/llama is the template. One package per model_type (folder
// named after it), one main file:
//
//   - Config with json tags equal to config.json's keys, a required-key
//     list passed to Config.Decode (missing keys are named), and validate()
//     for defaults and bad values (cfg.Errorf names config.json).
//   - A struct tree equal to the weight-name tree (Model.Model.Layers[i].
//     SelfAttn.QProj ↔ model.layers.i.self_attn.q_proj), filled in New with
//     w.Linear / w.Embedding / w.RMSNorm / w.Tensor given the field's
//     address and the expected shape. Linear layers are nn.Layer fields: a
//     dense or quantized layer is chosen by the loader (Quantization.For),
//     never by the architecture. Embed model.Params and set it from
//     w.Params() (the Trainable surface pkg/lora uses).
//   - Forward with every tensor's shape in a comment ([B, L, D], [B, H, L,
//     Dh], ...). With caches, call engine.Eval(h) on the residual stream at
//     the start of each layer: caches write in place, which evaluates the
//     new keys and values, and the engine would otherwise recompute the
//     released residual stream for every layer.
//   - Attention: nn.SplitHeads, rope.Forward(x, cache offset), c.Update,
//     nn.Attend with MaskFor(c, L, window) (window > 0 for sliding layers;
//     soft-capping via the returned options), nn.MergeHeads.
//   - NewCaches via model.NewCaches with the per-layer windows.
//   - Sanitize registered as a plan (Drop, StackExperts, or TensorPlan ops
//     and Steps) that writes what mlx_lm's sanitize writes, idempotent on
//     MLX-converted checkpoints; modeltest.MLXLayout checks both.
//   - A test calling modeltest.Run on the f32 and bf16 fixture folders, and
//     one blank import line in pkg/model/all.
//
// # Caches
//
// KVCache grows in steps of 256 and writes in place; RotatingKVCache keeps
// the first Keep positions and the last MaxSize−Keep (--max-kv-size, and
// sliding-window layers with Keep 0); QuantizedKVCache converts to MLX
// affine keys/values right after the update that brings its offset to
// --quantized-kv-start (mlx_lm's maybe_quantize_kv_cache: offset >=
// start), and AttendCached attends them without dequantizing
// (QuantizedUpdater). With --kv-bits rotating caches quantize too
// (NewQuantizedRotatingKVCache; mlx_lm refuses that combination).
// State and Meta follow mlx_lm's state and meta_state for prompt-cache files;
// SaveCache/LoadCache write and rebuild each layer by class name
// (RegisterCacheClass): mlx_lm's KVCache, RotatingKVCache and
// QuantizedKVCache, and for a rotating cache that quantized the
// mlxgo-only class "QuantizedRotatingKVCache" (meta_state keep, max_size,
// offset, _idx, group_size, bits), which mlx_lm reports as an unknown
// class rather than misreading. ApplyCacheOptions gives loaded caches the
// --kv-bits settings.
package model
