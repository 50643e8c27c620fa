package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strconv"
)

// MaxHeaderSize is the largest JSON header accepted, in bytes: the limit of
// the Rust safetensors crate and of MLX.
const MaxHeaderSize = 100_000_000

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// Begin and End are byte offsets into the data section (which starts
	// right after the header), End exclusive.
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// NumBytes is End − Begin.
func (t TensorInfo) NumBytes() int64 { return t.End - t.Begin }

// Header is a parsed safetensors header.
type Header struct {
	// Size is the JSON header length N; tensor data starts at byte 8+N.
	Size     int64
	Metadata map[string]string
	// Tensors in data order (by Begin, then End, then name).
	Tensors []TensorInfo
}

// DataStart is the file offset of the data section.
func (h *Header) DataStart() int64 { return 8 + h.Size }

// ParseHeader parses and checks the header of a safetensors file of
// fileSize bytes whose beginning is buf (buf must hold at least the 8-byte
// length and the JSON header; the whole file is fine). It checks the JSON,
// every tensor's dtype/shape/offsets, that each tensor's bytes match its
// shape and dtype (where the dtype's size is known), that no tensor reaches
// past the end of the file and that no two tensors overlap. file only labels
// errors.
func ParseHeader(file string, buf []byte, fileSize int64) (*Header, error) {
	if fileSize < 8 || len(buf) < 8 {
		return nil, errf(file, "", "file is %d bytes, too short for the 8-byte header length (truncated?)", fileSize)
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > MaxHeaderSize {
		return nil, errf(file, "", "header size %d is larger than the %d-byte limit (corrupt file?)", n, MaxHeaderSize)
	}
	if n < 2 {
		return nil, errf(file, "", "header size %d is too small for a JSON object (corrupt file?)", n)
	}
	if int64(n) > fileSize-8 {
		return nil, errf(file, "", "header is %d bytes but the file has only %d after the length (truncated file?)", n, fileSize-8)
	}
	if uint64(len(buf)-8) < n {
		return nil, errf(file, "", "need %d header bytes, got %d", n, len(buf)-8)
	}
	raw := buf[8 : 8+n]
	h := &Header{Size: int64(n)}
	dataLen := fileSize - 8 - int64(n)

	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, &Error{File: file, Msg: "header is not a JSON object", Err: err}
	}
	if top == nil {
		return nil, errf(file, "", "header is JSON null, want an object")
	}
	h.Tensors = make([]TensorInfo, 0, len(top))
	for name, v := range top {
		if name == "__metadata__" {
			md, err := parseMetadata(v)
			if err != nil {
				return nil, &Error{File: file, Msg: "bad __metadata__", Err: err}
			}
			h.Metadata = md
			continue
		}
		t, err := parseTensor(file, name, v, dataLen)
		if err != nil {
			return nil, err
		}
		h.Tensors = append(h.Tensors, t)
	}
	sort.Slice(h.Tensors, func(i, j int) bool {
		a, b := h.Tensors[i], h.Tensors[j]
		if a.Begin != b.Begin {
			return a.Begin < b.Begin
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return a.Name < b.Name
	})
	// Overlap check: with spans sorted by start, each non-empty span must
	// start at or after the furthest end seen so far.
	var end int64
	prev := ""
	for _, t := range h.Tensors {
		if t.End == t.Begin {
			continue
		}
		if t.Begin < end {
			return nil, errf(file, t.Name, "data_offsets [%d, %d] overlap tensor %q, which ends at %d", t.Begin, t.End, prev, end)
		}
		end, prev = t.End, t.Name
	}
	return h, nil
}

func parseMetadata(v json.RawMessage) (map[string]string, error) {
	if bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, err
	}
	md := make(map[string]string, len(m))
	for k, raw := range m {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("key %q has value %s, want a string", k, raw)
		}
		md[k] = s
	}
	return md, nil
}

type rawTensor struct {
	DType       *string       `json:"dtype"`
	Shape       []json.Number `json:"shape"`
	DataOffsets []json.Number `json:"data_offsets"`
}

func parseTensor(file, name string, v json.RawMessage, dataLen int64) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	var r rawTensor
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return t, &Error{File: file, Tensor: name, Msg: `want an object {"dtype", "shape", "data_offsets"}`, Err: err}
	}
	if r.DType == nil {
		return t, errf(file, name, `missing "dtype"`)
	}
	t.DType = DType(*r.DType)
	if r.Shape == nil {
		return t, errf(file, name, `missing "shape"`)
	}
	t.Shape = make([]int, len(r.Shape))
	numel := uint64(1)
	overflow := false
	for i, d := range r.Shape {
		u, err := strconv.ParseUint(d.String(), 10, 63)
		if err != nil {
			return t, errf(file, name, "shape %v: dimension %d is %s, want a non-negative integer", r.Shape, i, d)
		}
		t.Shape[i] = int(u)
		hi, lo := bits.Mul64(numel, u)
		if hi != 0 {
			overflow = true
		}
		numel = lo
	}
	if len(r.DataOffsets) != 2 {
		return t, errf(file, name, "data_offsets has %d entries, want 2", len(r.DataOffsets))
	}
	var off [2]int64
	for i, d := range r.DataOffsets {
		u, err := strconv.ParseUint(d.String(), 10, 63)
		if err != nil {
			return t, errf(file, name, "data_offsets entry %s is not a non-negative integer", d)
		}
		off[i] = int64(u)
	}
	t.Begin, t.End = off[0], off[1]
	if t.End < t.Begin {
		return t, errf(file, name, "data_offsets [%d, %d] end before they begin", t.Begin, t.End)
	}
	if t.End > dataLen {
		return t, errf(file, name, "data_offsets [%d, %d] reach past the end of the data (%d bytes; truncated file?)", t.Begin, t.End, dataLen)
	}
	if size, ok := t.DType.Size(); ok {
		hi, want := bits.Mul64(numel, uint64(size))
		if overflow || hi != 0 || want > math.MaxInt64 || int64(want) != t.End-t.Begin {
			return t, errf(file, name, "shape %v of %s needs %s bytes but data_offsets [%d, %d] hold %d",
				t.Shape, t.DType, sizeString(overflow || hi != 0, want), t.Begin, t.End, t.End-t.Begin)
		}
	} else if overflow {
		return t, errf(file, name, "shape %v overflows", t.Shape)
	}
	return t, nil
}

func sizeString(overflow bool, n uint64) string {
	if overflow {
		return "more than 2^64"
	}
	return strconv.FormatUint(n, 10)
}
