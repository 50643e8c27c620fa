package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// KV is one metadata entry. Value must be one of: uint8, int8, uint16,
// int16, uint32, int32, float32, bool, string, uint64, int64, float64, or a
// slice of one of those ([]string, []int32, []float32, ...), which is written
// as a GGUF array of that element type.
type KV struct {
	Key   string
	Value any
}

// TensorInfo describes one tensor in the table. Shape is row-major,
// outermost dimension first ([out, in] for a Linear weight, [E, out, in] for
// stacked experts), as in safetensors and numpy; the file stores it reversed.
type TensorInfo struct {
	Name  string
	Shape []int
	Type  Type
}

// NumElements is the product of the shape.
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// NumBytes is the encoded size of the tensor's data.
func (t TensorInfo) NumBytes() (int, error) {
	if len(t.Shape) == 0 {
		return t.Type.RowSize(1)
	}
	row, err := t.Type.RowSize(t.Shape[len(t.Shape)-1])
	if err != nil {
		return 0, fmt.Errorf("tensor %s %v: %w", t.Name, t.Shape, err)
	}
	return row * (t.NumElements() / t.Shape[len(t.Shape)-1]), nil
}

// ggml's GGML_MAX_NAME (including the NUL) and GGML_MAX_DIMS.
const (
	maxNameLen = 64
	maxDims    = 4
)

// TensorData writes the encoded bytes of tensors[i] to w; it is called once
// per tensor, in table order, and must write exactly that tensor's NumBytes.
type TensorData func(i int, w io.Writer) error

// WriteFile writes a GGUF v3 file to path: through a temporary file in the
// same folder, renamed into place only when everything was written, so a
// failure leaves no file behind. The data alignment is the uint32 value of a
// general.alignment entry in kvs, else DefaultAlignment. Tensor data is
// streamed: data is asked for one tensor at a time.
func WriteFile(path string, kvs []KV, tensors []TensorInfo, data TensorData) (err error) {
	align, err := alignmentOf(kvs)
	if err != nil {
		return err
	}
	sizes := make([]int, len(tensors))
	seen := make(map[string]bool, len(tensors))
	for i, t := range tensors {
		if t.Name == "" {
			return fmt.Errorf("gguf: tensor %d has no name", i)
		}
		if len(t.Name) >= maxNameLen {
			return fmt.Errorf("gguf: tensor name %q is %d bytes; ggml allows at most %d", t.Name, len(t.Name), maxNameLen-1)
		}
		if len(t.Shape) > maxDims {
			return fmt.Errorf("gguf: tensor %s has %d dimensions; ggml allows at most %d", t.Name, len(t.Shape), maxDims)
		}
		if seen[t.Name] {
			return fmt.Errorf("gguf: tensor %s listed twice", t.Name)
		}
		seen[t.Name] = true
		for _, d := range t.Shape {
			if d <= 0 {
				return fmt.Errorf("gguf: tensor %s has shape %v: dimensions must be positive", t.Name, t.Shape)
			}
		}
		if sizes[i], err = t.NumBytes(); err != nil {
			return fmt.Errorf("gguf: %w", err)
		}
	}

	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	tmp := f.Name()
	if err := f.Chmod(0o644); err != nil { // os.CreateTemp makes 0600 files
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("gguf: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countWriter{w: bw}
	if err = writeHeader(cw, kvs, tensors, sizes, align); err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	for i, t := range tensors {
		start := cw.n
		if err = data(i, cw); err != nil {
			return fmt.Errorf("gguf: writing tensor %s: %w", t.Name, err)
		}
		if got := cw.n - start; got != int64(sizes[i]) {
			return fmt.Errorf("gguf: tensor %s: wrote %d bytes, its shape %v and type %v need %d", t.Name, got, t.Shape, t.Type, sizes[i])
		}
		// llama.cpp pads after every tensor, the last one included.
		if err = pad(cw, align); err != nil {
			return fmt.Errorf("gguf: %s: %w", path, err)
		}
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("gguf: %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

func alignmentOf(kvs []KV) (int, error) {
	for _, kv := range kvs {
		if kv.Key != "general.alignment" {
			continue
		}
		v, ok := kv.Value.(uint32)
		if !ok || v == 0 || v&(v-1) != 0 {
			return 0, fmt.Errorf("gguf: general.alignment must be a uint32 power of two, got %T %v", kv.Value, kv.Value)
		}
		return int(v), nil
	}
	return DefaultAlignment, nil
}

func writeHeader(w *countWriter, kvs []KV, tensors []TensorInfo, sizes []int, align int) error {
	e := &enc{w: w}
	e.u32(Magic)
	e.u32(Version)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kvs)))
	seen := make(map[string]bool, len(kvs))
	for _, kv := range kvs {
		if seen[kv.Key] {
			return fmt.Errorf("metadata key %s given twice", kv.Key)
		}
		seen[kv.Key] = true
		e.str(kv.Key)
		if err := e.value(kv.Key, kv.Value); err != nil {
			return err
		}
	}
	var off uint64
	for i, t := range tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for j := len(t.Shape) - 1; j >= 0; j-- {
			e.u64(uint64(t.Shape[j]))
		}
		e.u32(uint32(t.Type))
		e.u64(off)
		off += uint64(sizes[i])
		off += uint64(padLen(int64(off), align))
	}
	if e.err != nil {
		return e.err
	}
	return pad(w, align)
}

func padLen(n int64, align int) int {
	return int((int64(align) - n%int64(align)) % int64(align))
}

var zeros [256]byte

func pad(w *countWriter, align int) error {
	_, err := w.Write(zeros[:padLen(w.n, align)])
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// enc writes little-endian GGUF primitives and keeps the first error.
type enc struct {
	w   io.Writer
	buf [8]byte
	err error
}

func (e *enc) put(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}
func (e *enc) u8(v uint8) { e.buf[0] = v; e.put(e.buf[:1]) }
func (e *enc) u16(v uint16) {
	binary.LittleEndian.PutUint16(e.buf[:2], v)
	e.put(e.buf[:2])
}
func (e *enc) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.put(e.buf[:4])
}
func (e *enc) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.put(e.buf[:8])
}
func (e *enc) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s)
	}
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// scalarType gives the GGUF type of a scalar Go value.
func scalarType(v any) (ValueType, bool) {
	switch v.(type) {
	case uint8:
		return TypeUint8, true
	case int8:
		return TypeInt8, true
	case uint16:
		return TypeUint16, true
	case int16:
		return TypeInt16, true
	case uint32:
		return TypeUint32, true
	case int32:
		return TypeInt32, true
	case float32:
		return TypeFloat32, true
	case bool:
		return TypeBool, true
	case string:
		return TypeString, true
	case uint64:
		return TypeUint64, true
	case int64:
		return TypeInt64, true
	case float64:
		return TypeFloat64, true
	}
	return 0, false
}

func (e *enc) scalar(v any) {
	switch x := v.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.u8(b2u8(x))
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	}
}

func (e *enc) value(key string, v any) error {
	if t, ok := scalarType(v); ok {
		e.u32(uint32(t))
		e.scalar(v)
		return nil
	}
	switch x := v.(type) {
	case []uint8:
		return arr(e, TypeUint8, x)
	case []int8:
		return arr(e, TypeInt8, x)
	case []uint16:
		return arr(e, TypeUint16, x)
	case []int16:
		return arr(e, TypeInt16, x)
	case []uint32:
		return arr(e, TypeUint32, x)
	case []int32:
		return arr(e, TypeInt32, x)
	case []float32:
		return arr(e, TypeFloat32, x)
	case []bool:
		return arr(e, TypeBool, x)
	case []string:
		return arr(e, TypeString, x)
	case []uint64:
		return arr(e, TypeUint64, x)
	case []int64:
		return arr(e, TypeInt64, x)
	case []float64:
		return arr(e, TypeFloat64, x)
	}
	return fmt.Errorf("metadata key %s: unsupported value type %T (want a GGUF scalar or a slice of one)", key, v)
}

func arr[E any](e *enc, t ValueType, xs []E) error {
	e.u32(uint32(TypeArray))
	e.u32(uint32(t))
	e.u64(uint64(len(xs)))
	for _, x := range xs {
		e.scalar(x)
	}
	return nil
}
