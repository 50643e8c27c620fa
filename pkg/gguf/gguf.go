// Package gguf writes GGUF v3 files as llama.cpp reads them: the low-level
// container (header, typed metadata, tensor table, aligned tensor data,
// streamed tensor by tensor), ggml's F32/F16/BF16/Q8_0/Q4_0 encodings
// (bit-exact with ggml's reference quantizers), and Export, which maps an
// HF/MLX checkpoint of the llama, mistral, mixtral, qwen2, qwen3, qwen3_moe
// and gemma families onto llama.cpp's tensor names and metadata keys, with
// the tokenizer and chat template, following llama.cpp's
// convert_hf_to_gguf.py conventions.
//
// Layout of a GGUF v3 file (all little-endian):
//
//	magic "GGUF" | version u32 = 3 | tensor_count u64 | kv_count u64
//	kv_count × (key string, value_type u32, value)
//	tensor_count × (name string, n_dims u32, ne[n_dims] u64, ggml_type u32, offset u64)
//	padding to general.alignment (default 32)
//	tensor data, each tensor starting at a multiple of the alignment
//
// A string is a u64 byte length then the bytes; an array is the element
// value type u32, a u64 count, then the elements. ne lists dimensions
// innermost first, so a row-major [out, in] matrix is written as ne = [in, out].
//
// API:
//
//   - WriteFile(path, kvs, tensors, data): the container; data is called
//     once per tensor, in order, and streams its bytes.
//   - Encode / Decode, QuantizeQ8_0 / QuantizeQ4_0: ggml's encodings.
//   - Export(dst, configJSON, tokenizerDir, src, outType): a checkpoint given
//     as a TensorSource (names, shapes, dtypes; one tensor read as float32 at
//     a time) to a llama.cpp-loadable file; ExportDir does the same for a
//     model folder (config.json, safetensors, tokenizer files) through
//     ModelSource. The caller dequantizes an MLX-quantized model first.
//
// Tests check the files three ways: byte layouts worked out by hand, the
// independent reader github.com/gpustack/gguf-parser-go, and llama.cpp
// itself (node-llama-cpp's prebuilt build, installed by .ci/deps), whose
// logits are compared with a float64 reference forward pass and whose
// tokenization of real vocabularies is compared with HF's.
package gguf

import "fmt"

// Magic is "GGUF" read as a little-endian uint32.
const Magic = 0x46554747

// Version is the GGUF version this package writes.
const Version = 3

// DefaultAlignment is the data alignment readers assume when the file has no
// general.alignment key.
const DefaultAlignment = 32

// QuantizationVersion is ggml's GGML_QNT_VERSION, written as
// general.quantization_version.
const QuantizationVersion = 2

// Type is a ggml tensor type (enum ggml_type).
type Type uint32

// The ggml types this package encodes.
const (
	F32  Type = 0
	F16  Type = 1
	Q4_0 Type = 2
	Q8_0 Type = 8
	BF16 Type = 30
)

// QK is the number of values in one Q8_0 or Q4_0 block.
const QK = 32

// String gives ggml's name for the type.
func (t Type) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case Q4_0:
		return "Q4_0"
	case Q8_0:
		return "Q8_0"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("ggml_type(%d)", uint32(t))
}

// ParseType reads a type name as given on a command line: f32, f16, bf16,
// q8_0, q4_0 (any case).
func ParseType(s string) (Type, error) {
	switch s {
	case "f32", "F32":
		return F32, nil
	case "f16", "F16":
		return F16, nil
	case "bf16", "BF16":
		return BF16, nil
	case "q8_0", "Q8_0":
		return Q8_0, nil
	case "q4_0", "Q4_0":
		return Q4_0, nil
	}
	return 0, fmt.Errorf("gguf: unknown output type %q (want f32, f16, bf16, q8_0 or q4_0)", s)
}

// blockSize is the number of values per block (1 for plain floats) and
// typeSize the bytes per block.
func (t Type) blockSize() int {
	if t == Q8_0 || t == Q4_0 {
		return QK
	}
	return 1
}

func (t Type) typeSize() int {
	switch t {
	case F32:
		return 4
	case F16, BF16:
		return 2
	case Q8_0:
		return 2 + QK // f16 d, int8 qs[32]
	case Q4_0:
		return 2 + QK/2 // f16 d, uint8 qs[16]
	}
	return 0
}

// Known reports whether this package can encode and decode t.
func (t Type) Known() bool { return t.typeSize() != 0 }

// RowSize is the byte size of n values of type t; n must be a multiple of
// the block size.
func (t Type) RowSize(n int) (int, error) {
	if !t.Known() {
		return 0, fmt.Errorf("gguf: unsupported tensor type %v", t)
	}
	if bs := t.blockSize(); n%bs != 0 {
		return 0, fmt.Errorf("gguf: %v needs a row length that is a multiple of %d, got %d", t, bs, n)
	}
	return n / t.blockSize() * t.typeSize(), nil
}

// FileType is llama.cpp's general.file_type (enum llama_ftype) for a
// file whose weights are mostly of type t.
func (t Type) FileType() uint32 {
	switch t {
	case F32:
		return 0 // ALL_F32
	case F16:
		return 1 // MOSTLY_F16
	case Q4_0:
		return 2 // MOSTLY_Q4_0
	case Q8_0:
		return 7 // MOSTLY_Q8_0
	case BF16:
		return 32 // MOSTLY_BF16
	}
	return 0
}

// ValueType is a GGUF metadata value type (enum gguf_type).
type ValueType uint32

// The GGUF metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// Token types (llama.cpp's llama_token_type), written in tokenizer.ggml.token_type.
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenUnused      int32 = 5
	TokenByte        int32 = 6
)
