// Package engine is mlxgo's array library: MLX-style lazy arrays, Eval,
// an op library (mlx.core, mlx.core.fast and the functional parts of
// mlx.nn), and reverse-mode autodiff, computed on a pluggable backend.
//
// # Lazy graph
//
// An *Array is a node: a dtype, a shape, and either data (evaluated) or a
// primitive with input arrays. Ops such as Add, Matmul or Softmax only
// build nodes; nothing is computed until Eval (or an accessor such as
// Float32s, which evaluates first). Eval(arrays...) runs every node the
// arrays need, once, in dependency order, so one call can compute a whole
// forward-and-backward step.
//
// Shape ops are views where possible: Transpose, Slice, BroadcastTo,
// StopGradient and Reshape of a contiguous array share their input's
// buffer with new strides and offset; backends read strided inputs
// directly.
//
// Ops do not panic or return errors on bad input: they return an array
// carrying the error (Err), every op built on it passes it on, and Eval
// returns it. Check Err after building a graph from untrusted shapes, or
// just check Eval's error.
//
// # Memory
//
// Buffers come from the backend's size-bucketed pool (on the cpu backend,
// buffers of 64 KiB and more are anonymous mappings outside the Go heap, so
// weights made in memory do not raise the garbage collector's heap goal and
// the process's RSS stays near the live working set). During Eval each
// intermediate buffer goes back to the pool as soon as its last consumer
// has run, and an elementwise or fused op may write straight into the
// buffer of an input that dies with it (MLX's donation), so a chain of ops
// needs one buffer, not one per op. The arrays passed to Eval keep their
// data and drop their graph, and arrays created from data (weights) keep
// theirs. An intermediate whose
// buffer was released is unevaluated again and would be recomputed if
// evaluated later, so evaluate together what you need together (MLX keeps
// such arrays alive through reference counts, which Go does not have). A
// buffer whose arrays all become unreachable is returned by a runtime
// cleanup; the hot path never waits for it. ActiveMemory, PeakMemory,
// ResetPeakMemory, CacheMemory and ClearCache report and manage the
// allocator (mlx_lm prints PeakMemory as "Peak memory").
//
// Array.UpdateSlice (eager) and SliceUpdateInPlace (lazy, inside a step's
// graph) write into an evaluated array's buffer in place, for preallocated
// KV caches as mlx_lm's cache does; they copy first when another evaluated
// array shares the buffer.
//
// FromBytes wraps host memory in place (for the cpu backend), so weights
// memory-mapped from a safetensors file are used in their stored dtype
// (bfloat16, or packed uint32 with scales and biases) without a copy and
// are not counted as active memory.
//
// # Dtypes
//
// float32, float16, bfloat16, int32, uint32, uint8 and bool. Binary ops
// promote like MLX (floats beat ints, bfloat16 with float16 gives float32)
// and Scalar makes weakly typed constants that take the other operand's
// dtype, like Python numbers in MLX. Half-precision inputs are computed in
// float32 (or wider) and rounded once to the output dtype.
//
// # Autodiff
//
// VJP, Grad and ValueAndGrad are graph transforms: every differentiable
// primitive has a vector-Jacobian product written with other ops, so the
// gradient is just more graph, evaluated with the value in one Eval.
// Parameters are a flat ordered []*Array (a model's (name, *Array) list in
// checkpoint order) and gradients come back in the same order. Fused
// primitives (RMSNorm, LayerNorm, RoPE, ScaledDotProductAttention)
// differentiate through their composite form. QuantizedMatmul and GatherQMM
// are differentiable with respect to x, not the packed weights.
//
// Checkpoint wraps a block for gradient checkpointing (mx.checkpoint): its
// intermediates are released after the forward and recomputed from its
// inputs when the backward pass reaches it.
//
// # Backends
//
// A backend (package backend) allocates buffers, copies bytes in and out,
// and runs one primitive on evaluated inputs. The cpu backend (package cpu)
// is the default and the reference; it routes matrix products through
// pkg/kernels. Fused kernels are optional interfaces (backend.FusedAttention,
// FusedNorm, FusedRoPE, FusedSoftmax, FusedActivation): when the backend lacks one, the
// engine builds the op from smaller primitives instead. Backends register
// by name (backend.Register, backend.Open); SetDefaultBackend picks one.
// Eval serialises on one mutex, so arrays may be built and evaluated from
// several goroutines. SetTrace reports each primitive's run time.
//
// # Tests
//
// Every op is checked against float64 references on random inputs
// (including transposed, sliced and broadcast views and bfloat16/float16
// data) and every VJP against central finite differences of the float32
// engine function (or, for the quantized products whose forward rounds
// activations to int8 in pkg/kernels, against the exact pullback).
// MLXGO_TEST_BACKEND=<name> runs the same suite on another registered
// backend; MLXGO_TEST_SEED draws other random inputs.
package engine
