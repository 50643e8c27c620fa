package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"unsafe"
)

// File is one open safetensors file, memory-mapped where the platform
// allows. Tensor views share its memory: they are read-only and valid until
// Close.
type File struct {
	Path   string
	Header *Header
	data   []byte // the whole file
	unmap  func() error
	byName map[string]int
}

// Open maps and checks one safetensors file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot open", Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot stat", Err: err}
	}
	if st.IsDir() {
		return nil, errf(path, "", "is a directory, want a .safetensors file (use OpenModel for a folder)")
	}
	size := st.Size()
	if size < 8 {
		return nil, errf(path, "", "file is %d bytes, too short for the 8-byte header length (truncated?)", size)
	}
	if size > math.MaxInt {
		return nil, errf(path, "", "file of %d bytes is too large to map", size)
	}
	data, unmap, err := mapFile(f, size)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot map", Err: err}
	}
	h, err := ParseHeader(path, data, size)
	if err != nil {
		unmap()
		return nil, err
	}
	return newFile(path, h, data, unmap), nil
}

// FromBytes reads a safetensors file held in memory (tests, small adapter
// files). name labels errors.
func FromBytes(name string, data []byte) (*File, error) {
	h, err := ParseHeader(name, data, int64(len(data)))
	if err != nil {
		return nil, err
	}
	return newFile(name, h, data, func() error { return nil }), nil
}

func newFile(path string, h *Header, data []byte, unmap func() error) *File {
	f := &File{Path: path, Header: h, data: data, unmap: unmap, byName: make(map[string]int, len(h.Tensors))}
	for i, t := range h.Tensors {
		f.byName[t.Name] = i
	}
	return f
}

// Close unmaps the file; views taken from it must not be used afterwards.
func (f *File) Close() error {
	if f.unmap == nil {
		return nil
	}
	err := f.unmap()
	f.unmap, f.data = nil, nil
	if err != nil {
		return &Error{File: f.Path, Msg: "cannot unmap", Err: err}
	}
	return nil
}

// Metadata is the header's __metadata__ (nil when absent).
func (f *File) Metadata() map[string]string { return f.Header.Metadata }

// Names lists the tensors in data order.
func (f *File) Names() []string {
	names := make([]string, len(f.Header.Tensors))
	for i, t := range f.Header.Tensors {
		names[i] = t.Name
	}
	return names
}

// Info describes a tensor without touching its data.
func (f *File) Info(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Header.Tensors[i], true
}

// Tensor returns a zero-copy view of a tensor.
func (f *File) Tensor(name string) (Tensor, error) {
	i, ok := f.byName[name]
	if !ok {
		return Tensor{}, errf(f.Path, name, "no such tensor")
	}
	if f.data == nil {
		return Tensor{}, errf(f.Path, name, "file is closed")
	}
	t := f.Header.Tensors[i]
	start := f.Header.DataStart()
	return Tensor{TensorInfo: t, File: f.Path, data: f.data[start+t.Begin : start+t.End : start+t.End], owner: f}, nil
}

// Tensor is a zero-copy view of one tensor's little-endian bytes.
type Tensor struct {
	TensorInfo
	File  string // the file it came from, for error messages
	data  []byte
	owner *File
}

// Bytes is the raw data, whatever the dtype. It aliases the mapped file
// and must not be modified.
func (t Tensor) Bytes() []byte { return t.data }

// WillNeed asks the OS to start reading the tensor's pages in.
func (t Tensor) WillNeed() { t.advise(false) }

// Release tells the OS the tensor's pages are no longer needed, so a
// streaming reader's resident memory stays bounded; the view stays valid
// (pages are read again if touched).
func (t Tensor) Release() { t.advise(true) }

func (t Tensor) advise(release bool) {
	if t.owner == nil || t.owner.data == nil || len(t.data) == 0 {
		return
	}
	start := t.owner.Header.DataStart()
	advise(t.owner.data, start+t.Begin, start+t.End, release)
}

func (t Tensor) typeErr(want string) error {
	return errf(t.File, t.Name, "dtype %s cannot be read as %s", t.DType, want)
}

// littleEndianHost is true on every platform mlxgo targets (amd64, arm64).
var littleEndianHost = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// view reinterprets the bytes as []E without copying when they are aligned
// and the host is little-endian; otherwise it decodes a copy.
func view[E any](t Tensor, decode func(b []byte) E) []E {
	var zero E
	size := int(unsafe.Sizeof(zero))
	n := len(t.data) / size
	if n == 0 {
		return []E{}
	}
	p := unsafe.Pointer(unsafe.SliceData(t.data))
	if littleEndianHost && uintptr(p)%unsafe.Alignof(zero) == 0 {
		return unsafe.Slice((*E)(p), n)
	}
	out := make([]E, n)
	for i := range out {
		out[i] = decode(t.data[i*size:])
	}
	return out
}

func (t Tensor) check(want string, ok ...DType) error {
	for _, d := range ok {
		if t.DType == d {
			return nil
		}
	}
	return t.typeErr(want)
}

// Float32s views an F32 tensor.
func (t Tensor) Float32s() ([]float32, error) {
	if err := t.check("float32", F32); err != nil {
		return nil, err
	}
	return view(t, func(b []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(b)) }), nil
}

// Float64s views an F64 tensor.
func (t Tensor) Float64s() ([]float64, error) {
	if err := t.check("float64", F64); err != nil {
		return nil, err
	}
	return view(t, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }), nil
}

// Uint16s views the raw 16-bit words of an F16, BF16 or U16 tensor.
func (t Tensor) Uint16s() ([]uint16, error) {
	if err := t.check("uint16 words", F16, BF16, U16); err != nil {
		return nil, err
	}
	return view(t, binary.LittleEndian.Uint16), nil
}

// Int16s views an I16 tensor.
func (t Tensor) Int16s() ([]int16, error) {
	if err := t.check("int16", I16); err != nil {
		return nil, err
	}
	return view(t, func(b []byte) int16 { return int16(binary.LittleEndian.Uint16(b)) }), nil
}

// Uint32s views a U32 tensor (MLX packed quantized weights).
func (t Tensor) Uint32s() ([]uint32, error) {
	if err := t.check("uint32", U32); err != nil {
		return nil, err
	}
	return view(t, binary.LittleEndian.Uint32), nil
}

// Int32s views an I32 tensor.
func (t Tensor) Int32s() ([]int32, error) {
	if err := t.check("int32", I32); err != nil {
		return nil, err
	}
	return view(t, func(b []byte) int32 { return int32(binary.LittleEndian.Uint32(b)) }), nil
}

// Int64s views an I64 tensor.
func (t Tensor) Int64s() ([]int64, error) {
	if err := t.check("int64", I64); err != nil {
		return nil, err
	}
	return view(t, func(b []byte) int64 { return int64(binary.LittleEndian.Uint64(b)) }), nil
}

// Uint64s views a U64 tensor.
func (t Tensor) Uint64s() ([]uint64, error) {
	if err := t.check("uint64", U64); err != nil {
		return nil, err
	}
	return view(t, binary.LittleEndian.Uint64), nil
}

// Uint8s views a one-byte tensor: U8, or the raw codes of F8_E4M3,
// F8_E5M2 and F8_E8M0 (MLX loads those as uint8 too).
func (t Tensor) Uint8s() ([]uint8, error) {
	if err := t.check("uint8", U8, F8E4M3, F8E5M2, F8E8M0); err != nil {
		return nil, err
	}
	return t.data, nil
}

// Int8s views an I8 tensor.
func (t Tensor) Int8s() ([]int8, error) {
	if err := t.check("int8", I8); err != nil {
		return nil, err
	}
	if len(t.data) == 0 {
		return []int8{}, nil
	}
	return unsafe.Slice((*int8)(unsafe.Pointer(unsafe.SliceData(t.data))), len(t.data)), nil
}

// Bools reads a BOOL tensor (one byte per element, nonzero is true).
func (t Tensor) Bools() ([]bool, error) {
	if err := t.check("bool", BOOL); err != nil {
		return nil, err
	}
	out := make([]bool, len(t.data))
	for i, b := range t.data {
		out[i] = b != 0
	}
	return out, nil
}

func (t Tensor) String() string {
	return fmt.Sprintf("%s %s %v", t.Name, t.DType, t.Shape)
}

// Element is a fixed-size number a tensor can be stored as.
type Element interface {
	~uint8 | ~int8 | ~uint16 | ~int16 | ~uint32 | ~int32 | ~uint64 | ~int64 | ~float32 | ~float64
}

// AsBytes views a slice of numbers as its little-endian bytes without
// copying (every platform mlxgo targets is little-endian), for
// Writer.WriteTensor and Save.
func AsBytes[E Element](s []E) []byte {
	if len(s) == 0 {
		return []byte{}
	}
	if !littleEndianHost {
		panic("safetensors.AsBytes: big-endian hosts are not supported")
	}
	var zero E
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s))), len(s)*int(unsafe.Sizeof(zero)))
}
