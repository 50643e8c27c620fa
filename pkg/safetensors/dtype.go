// Package safetensors reads and writes safetensors files the way MLX and
// mlx_lm do.
//
// Reading memory-maps each file (a plain read elsewhere), parses the header
// with its own strict parser and hands out zero-copy views of every tensor's
// bytes. Every dtype name is kept, including the F8 and F4 kinds MLX writes
// for mxfp8/nvfp4 and FP8 checkpoints; a tensor whose dtype mlxgo does not
// know fails only when its typed data is asked for, never the whole file.
// A model folder is read through model.safetensors.index.json when present,
// else from its model*.safetensors (mlx_lm's glob), else every *.safetensors.
//
// Writing follows mlx_lm's save_model: safetensors metadata
// {"format": "mlx"}, greedy shards of at most 5 GiB named model.safetensors
// or model-0000i-of-0000N.safetensors, and model.safetensors.index.json with
// metadata.total_size, metadata.total_parameters and a sorted weight_map,
// written as Python's json.dump(indent=4) would. Shards are planned from
// (name, dtype, shape) first, then tensors are written one at a time in any
// order, so a converter never holds the whole model; every file is written
// to a temporary name and renamed into place when complete.
//
// github.com/nlpodyssey/safetensors is used for the classic dtype table and,
// in tests, as an independent reader and writer. It is not used for file
// access: it has no mmap, rejects a whole file for one F8 tensor, needs the
// whole file in memory to write and cannot write sharded or F8 files.
package safetensors

import (
	nlp "github.com/nlpodyssey/safetensors"
)

// DType is a safetensors dtype name as it appears in the header ("F32",
// "BF16", "F8_E4M3", …). Unknown names are kept as they are.
type DType string

// The dtypes mlxgo knows the element size of.
const (
	BOOL   DType = "BOOL"
	U8     DType = "U8"
	I8     DType = "I8"
	I16    DType = "I16"
	U16    DType = "U16"
	F16    DType = "F16"
	BF16   DType = "BF16"
	I32    DType = "I32"
	U32    DType = "U32"
	F32    DType = "F32"
	F64    DType = "F64"
	I64    DType = "I64"
	U64    DType = "U64"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	F8E8M0 DType = "F8_E8M0"
	C64    DType = "C64"
)

// extraSizes are the dtypes nlpodyssey/safetensors does not know.
var extraSizes = map[DType]int{F8E4M3: 1, F8E5M2: 1, F8E8M0: 1, C64: 8}

// Size returns the size in bytes of one element, and false for a dtype
// whose size mlxgo does not know (F4, F6_*, anything new).
func (d DType) Size() (int, bool) {
	if n, ok := extraSizes[d]; ok {
		return n, true
	}
	if dt, err := nlp.ParseDType(string(d)); err == nil {
		return int(dt.Size()), true
	}
	return 0, false
}

// Known reports whether mlxgo knows the dtype's element size.
func (d DType) Known() bool {
	_, ok := d.Size()
	return ok
}

func (d DType) String() string { return string(d) }
