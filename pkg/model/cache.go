package model

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/engine"
	"github.com/mlxgo/mlxgo/pkg/quant"
)

// cacheStep is how many positions a KV buffer grows by (mlx_lm's step).
const cacheStep = 256

// Masker is implemented by caches whose key layout needs particular
// attention-mask settings (rotating caches). MaskFor uses it.
type Masker interface {
	// Mask returns the mask options for L new queries attending the keys
	// Update returns, in a layer with the given sliding window (0: none).
	Mask(L, window int) engine.AttentionOptions
}

// MaskFor returns the attention-mask settings for L new queries attending
// the keys c.Update returned (c may be nil: no cache): causal (queries
// aligned to the end of the keys), restricted to a sliding window when
// window > 0. Architectures call it once per layer.
func MaskFor(c Cache, L, window int) engine.AttentionOptions {
	if m, ok := c.(Masker); ok {
		return m.Mask(L, window)
	}
	return engine.AttentionOptions{Causal: L > 1, Window: window}
}

// NewCaches makes one cache per layer for the generate flags in o:
// windows[i] > 0 marks a sliding-window layer of that size (it gets a
// rotating cache of the window, keep 0, as mlx_lm's make_cache); other
// layers get a rotating cache of o.MaxKVSize (keep 4) when set, else a
// quantizing cache when o.KVBits > 0, else a standard one. windows may be
// nil (no sliding layers). Unlike mlx_lm, --max-kv-size applies to every
// architecture, and --kv-bits to every cache, rotating ones included.
func NewCaches(layers int, windows []int, o CacheOptions) []Cache {
	out := make([]Cache, layers)
	for i := range out {
		w := 0
		if i < len(windows) {
			w = windows[i]
		}
		switch {
		case w > 0:
			size := w
			if o.MaxKVSize > 0 && o.MaxKVSize < size {
				size = o.MaxKVSize
			}
			out[i] = NewQuantizedRotatingKVCache(size, 0, o.KVGroupSize, o.KVBits, o.QuantizedKVStart)
		case o.MaxKVSize > 0:
			out[i] = NewQuantizedRotatingKVCache(o.MaxKVSize, 4, o.KVGroupSize, o.KVBits, o.QuantizedKVStart)
		case o.KVBits > 0:
			out[i] = NewQuantizedKVCache(o.KVGroupSize, o.KVBits, o.QuantizedKVStart)
		default:
			out[i] = &KVCache{}
		}
	}
	return out
}

// KVCache is mlx_lm's KVCache: keys and values [B, Hk, T, Dh] in buffers
// grown in steps of 256 positions and written in place.
type KVCache struct {
	keys, values *engine.Array // [B, Hk, capacity, Dh], evaluated
	offset       int
}

// Offset is the number of positions stored.
func (c *KVCache) Offset() int { return c.offset }

// Update appends keys and values [B, Hk, L, Dh] (evaluating them) and
// returns views of everything stored, [B, Hk, offset, Dh].
func (c *KVCache) Update(k, v *engine.Array) (*engine.Array, *engine.Array) {
	// One evaluation for both (UpdateSlice would evaluate each alone).
	if err := engine.Eval(k, v); err != nil {
		e := engine.Errorf("kv cache: %v", err)
		return e, e
	}
	L := k.Dim(2)
	if c.keys == nil || c.offset+L > c.keys.Dim(2) {
		c.keys = grow(c.keys, k, c.offset, L)
		c.values = grow(c.values, v, c.offset, L)
		if err := engine.Eval(c.keys, c.values); err != nil {
			return engine.Errorf("kv cache: %v", err), nil
		}
	}
	if err := write(c.keys, k, c.offset); err != nil {
		return err, err
	}
	if err := write(c.values, v, c.offset); err != nil {
		return err, err
	}
	c.offset += L
	return engine.SliceAxis(c.keys, 2, 0, c.offset), engine.SliceAxis(c.values, 2, 0, c.offset)
}

// grow returns a buffer [B, Hk, ceil((off+L)/256)·256, Dh] holding buf's
// first off positions.
func grow(buf, x *engine.Array, off, L int) *engine.Array {
	shape := append([]int(nil), x.Shape()...)
	shape[2] = (off + L + cacheStep - 1) / cacheStep * cacheStep
	dt := x.DType()
	if buf == nil || off == 0 {
		return engine.Zeros(shape, dt)
	}
	dt = buf.DType()
	shape[2] -= off
	return engine.Concatenate([]*engine.Array{engine.SliceAxis(buf, 2, 0, off), engine.Zeros(shape, dt)}, 2)
}

// write stores x [B, Hk, L, Dh] at position off of buf in place; on error
// it returns an array carrying it.
func write(buf, x *engine.Array, off int) *engine.Array {
	s := buf.Shape()
	err := buf.UpdateSlice(x, []int{0, 0, off, 0}, []int{s[0], s[1], off + x.Dim(2), s[3]}, nil)
	if err != nil {
		return engine.Errorf("kv cache update: %v", err)
	}
	return nil
}

// Trimmable is true: positions can always be dropped.
func (c *KVCache) Trimmable() bool { return true }

// Settled: writes are evaluated in Update.
func (c *KVCache) Settled() {}

// Trim drops the last n positions.
func (c *KVCache) Trim(n int) int {
	n = min(n, c.offset)
	c.offset -= n
	return n
}

// State returns keys and values [B, Hk, offset, Dh] (nil when empty).
func (c *KVCache) State() []*engine.Array {
	if c.keys == nil {
		return nil
	}
	return []*engine.Array{engine.SliceAxis(c.keys, 2, 0, c.offset), engine.SliceAxis(c.values, 2, 0, c.offset)}
}

// Meta is empty for a standard cache.
func (c *KVCache) Meta() []string { return nil }

// SetState restores keys and values [B, Hk, T, Dh].
func (c *KVCache) SetState(keys, values *engine.Array) error {
	c.keys, c.values, c.offset = nil, nil, 0
	if keys == nil {
		return nil
	}
	k, v := c.Update(keys, values)
	if err := k.Err(); err != nil {
		return err
	}
	return v.Err()
}

// RotatingKVCache is mlx_lm's RotatingKVCache: at most MaxSize positions;
// once full, new positions overwrite the oldest ones except the first
// Keep (attention sinks). Single-token updates write in place (the buffer
// is then not in temporal order, which attention over one query does not
// mind); multi-token updates reorder and keep MaxSize−1 old positions so
// every new query sees MaxSize keys, masked by a window of MaxSize.
//
// With Bits > 0 it also quantizes keys and values (MLX affine along Dh,
// group GroupSize) once its offset reaches Start, like QuantizedKVCache:
// mlx_lm cannot combine --max-kv-size with --kv-bits; here the rotation
// runs on the packed words, scales and biases alike (all have positions on
// axis 2) and AttendCached attends them quantized (UpdateQuantized; Update
// returns them dequantized).
type RotatingKVCache struct {
	MaxSize, Keep          int
	Bits, GroupSize, Start int
	// bufs: keys, values [B, Hk, n, Dh]; once quantized, keys (packed,
	// scales, biases) then values. Evaluated.
	bufs        []*engine.Array
	quantized   bool
	dtype       engine.DType
	offset, idx int
}

// NewRotatingKVCache makes a rotating cache.
func NewRotatingKVCache(maxSize, keep int) *RotatingKVCache {
	return &RotatingKVCache{MaxSize: maxSize, Keep: keep}
}

// NewQuantizedRotatingKVCache makes a rotating cache that quantizes its
// keys and values once its offset reaches start (groupSize 0 means 64).
func NewQuantizedRotatingKVCache(maxSize, keep, groupSize, bits, start int) *RotatingKVCache {
	if groupSize == 0 {
		groupSize = 64
	}
	return &RotatingKVCache{MaxSize: maxSize, Keep: keep, Bits: bits, GroupSize: groupSize, Start: start}
}

// Offset is the number of positions seen (not stored).
func (c *RotatingKVCache) Offset() int { return c.offset }

// Quantized reports whether the stored keys and values are quantized.
func (c *RotatingKVCache) Quantized() bool { return c.quantized }

// Mask: multi-token updates are causal within a window of MaxSize (or the
// layer's smaller window); a single query attends everything stored.
func (c *RotatingKVCache) Mask(L, window int) engine.AttentionOptions {
	if L == 1 {
		return engine.AttentionOptions{}
	}
	w := c.MaxSize
	if window > 0 && window < w {
		w = window
	}
	return engine.AttentionOptions{Causal: true, Window: w}
}

// Update stores keys and values [B, Hk, L, Dh] and returns what to attend
// (dequantized once quantized).
func (c *RotatingKVCache) Update(k, v *engine.Array) (*engine.Array, *engine.Array) {
	q, fk, fv := c.UpdateQuantized(k, v)
	if q == nil {
		return fk, fv
	}
	return q.dequantize(0, c.dtype), q.dequantize(1, c.dtype)
}

// UpdateQuantized stores keys and values [B, Hk, L, Dh] and returns what
// to attend: quantized once the cache has quantized, else (q nil) float.
func (c *RotatingKVCache) UpdateQuantized(k, v *engine.Array) (*QuantizedKV, *engine.Array, *engine.Array) {
	fail := func(err error) (*QuantizedKV, *engine.Array, *engine.Array) {
		e := engine.Errorf("rotating kv cache: %v", err)
		return nil, e, e
	}
	if err := engine.Eval(k, v); err != nil {
		return fail(err)
	}
	// Attention reads quantized keys and values in the dtype of the new
	// ones (a restored cache learns it here).
	c.dtype = k.DType()
	parts := []*engine.Array{k, v}
	if c.quantized {
		parts = nil
		for _, x := range []*engine.Array{k, v} {
			q, err := quantizeKV(x, c.GroupSize, c.Bits)
			if err != nil {
				return fail(err)
			}
			parts = append(parts, q[:]...)
		}
	}
	var out []*engine.Array
	var err error
	if k.Dim(2) == 1 {
		out, err = c.updateInPlace(parts)
	} else {
		out, err = c.updateConcat(parts)
	}
	if err != nil {
		return fail(err)
	}
	if !c.quantized {
		// This update is attended in float; the buffers quantize after it
		// once the offset reaches Start (QuantizedKVCache's rule).
		if c.Bits > 0 && c.offset >= c.Start {
			var q []*engine.Array
			for _, b := range c.bufs {
				qb, err := quantizeKV(b, c.GroupSize, c.Bits)
				if err != nil {
					return fail(err)
				}
				q = append(q, qb[:]...)
			}
			c.bufs, c.quantized = q, true
		}
		return nil, out[0], out[1]
	}
	q := &QuantizedKV{GroupSize: c.GroupSize, Bits: c.Bits}
	copy(q.Keys[:], out[:3])
	copy(q.Values[:], out[3:])
	return q, nil, nil
}

func (c *RotatingKVCache) updateConcat(parts []*engine.Array) ([]*engine.Array, error) {
	if c.bufs == nil {
		c.bufs = parts
	} else {
		for i := range c.bufs {
			c.bufs[i] = c.temporal(c.bufs[i])
		}
		c.idx = c.bufs[0].Dim(2)
		trim := c.idx - c.MaxSize + 1
		for i := range c.bufs {
			c.bufs[i] = c.trim(trim, c.bufs[i], parts[i])
		}
	}
	if err := engine.Eval(c.bufs...); err != nil {
		return nil, err
	}
	c.offset += parts[0].Dim(2)
	c.idx = c.bufs[0].Dim(2)
	return c.bufs, nil
}

// temporal puts a buffer in position order.
func (c *RotatingKVCache) temporal(x *engine.Array) *engine.Array {
	n := x.Dim(2)
	switch {
	case c.idx == n:
		return x
	case c.idx < c.offset:
		return engine.Concatenate([]*engine.Array{
			engine.SliceAxis(x, 2, 0, c.Keep), engine.SliceAxis(x, 2, c.idx, n), engine.SliceAxis(x, 2, c.Keep, c.idx),
		}, 2)
	default:
		return engine.SliceAxis(x, 2, 0, c.idx)
	}
}

// trim drops trim positions after the first Keep and appends app (if any).
func (c *RotatingKVCache) trim(trim int, x, app *engine.Array) *engine.Array {
	parts := []*engine.Array{x}
	if trim > 0 {
		parts = []*engine.Array{engine.SliceAxis(x, 2, 0, c.Keep), engine.SliceAxis(x, 2, trim+c.Keep, x.Dim(2))}
	}
	if app != nil {
		parts = append(parts, app)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return engine.Concatenate(parts, 2)
}

func (c *RotatingKVCache) updateInPlace(parts []*engine.Array) ([]*engine.Array, error) {
	prev := c.offset
	if c.bufs == nil || (prev >= c.bufs[0].Dim(2) && c.bufs[0].Dim(2) < c.MaxSize) {
		n := min(cacheStep, c.MaxSize-prev)
		grown := make([]*engine.Array, len(parts))
		for i, p := range parts {
			shape := append([]int(nil), p.Shape()...)
			shape[2] = n
			if c.bufs == nil {
				grown[i] = engine.Zeros(shape, p.DType())
			} else {
				grown[i] = engine.Concatenate([]*engine.Array{c.bufs[i], engine.Zeros(shape, c.bufs[i].DType())}, 2)
			}
		}
		c.bufs = grown
		c.idx = prev
	}
	if trim := c.bufs[0].Dim(2) - c.MaxSize; trim > 0 {
		for i := range c.bufs {
			c.bufs[i] = c.trim(trim, c.bufs[i], nil)
		}
		c.idx = c.MaxSize
	}
	if err := engine.Eval(c.bufs...); err != nil {
		return nil, err
	}
	if c.idx == c.MaxSize {
		c.idx = c.Keep
	}
	for i, p := range parts {
		if e := write(c.bufs[i], p, c.idx); e != nil {
			return nil, e.Err()
		}
	}
	c.offset++
	c.idx++
	return c.stored(), nil
}

// stored returns the buffers, sliced to the offset before they fill.
func (c *RotatingKVCache) stored() []*engine.Array {
	if c.bufs == nil || c.offset >= c.bufs[0].Dim(2) {
		return c.bufs
	}
	out := make([]*engine.Array, len(c.bufs))
	for i, b := range c.bufs {
		out[i] = engine.SliceAxis(b, 2, 0, c.offset)
	}
	return out
}

// Trimmable until the cache has wrapped.
func (c *RotatingKVCache) Trimmable() bool { return c.offset < c.MaxSize }

// Settled: writes are evaluated in Update.
func (c *RotatingKVCache) Settled() {}

// Trim drops the last n positions (only before wrapping).
func (c *RotatingKVCache) Trim(n int) int {
	n = min(n, c.offset)
	c.offset -= n
	c.idx -= n
	return n
}

// State returns the stored keys and values [B, Hk, min(offset, n), Dh] in
// storage order (rotated once wrapped; Meta's idx says where), as mlx_lm's
// RotatingKVCache.state; once quantized, keys (packed, scales, biases)
// then values.
func (c *RotatingKVCache) State() []*engine.Array { return c.stored() }

// Meta is mlx_lm's meta_state: keep, max_size, offset, _idx.
// Once quantized (an mlxgo extension) group_size and bits follow.
func (c *RotatingKVCache) Meta() []string {
	m := []string{fmt.Sprint(c.Keep), fmt.Sprint(c.MaxSize), fmt.Sprint(c.offset), fmt.Sprint(c.idx)}
	if c.quantized {
		m = append(m, fmt.Sprint(c.GroupSize), fmt.Sprint(c.Bits))
	}
	return m
}

// Restore sets the cache from State and Meta as saved (mlx_lm's state and
// meta_state setters): keys and values [B, Hk, n, Dh] (or, for a
// quantized cache, the 6 arrays of State) and keep, max_size, offset,
// _idx (and group_size, bits for a quantized cache; without them c's
// GroupSize and Bits stay). dt is the dtype attention reads quantized keys
// and values in until the next Update says.
func (c *RotatingKVCache) Restore(state []*engine.Array, meta []string, dt engine.DType) error {
	want := 4
	if len(meta) == 6 {
		want = 6
	}
	n, err := ints(meta, want, "RotatingKVCache meta_state (keep, max_size, offset, _idx[, group_size, bits])")
	if err != nil {
		return err
	}
	if len(state) != 2 && len(state) != 6 {
		return fmt.Errorf("RotatingKVCache state: want keys and values (2 arrays, or 6 quantized), got %d", len(state))
	}
	if len(state) == 2 && want == 6 {
		return fmt.Errorf("RotatingKVCache state: group_size and bits in the meta_state but keys and values are not quantized")
	}
	if len(state) == 6 {
		g, b := c.GroupSize, c.Bits
		if want == 6 {
			g, b = n[4], n[5]
		}
		if err := checkQuantized(state, g, b); err != nil {
			return fmt.Errorf("RotatingKVCache state: %w", err)
		}
		c.GroupSize, c.Bits = g, b
	}
	stored := state[0].Dim(2)
	for _, a := range state {
		if a.NDim() != 4 || a.Dim(2) != stored {
			return fmt.Errorf("RotatingKVCache state: arrays must be [B, Hk, %d, ...], got %v", stored, a.Shape())
		}
	}
	if n[1] <= 0 || n[0] < 0 || n[0] > n[1] || n[3] < 0 || n[3] > stored || stored > max(n[1], n[2]) {
		return fmt.Errorf("RotatingKVCache meta_state %v does not fit %d stored positions", meta, stored)
	}
	bufs := make([]*engine.Array, len(state))
	for i, a := range state {
		bufs[i] = engine.Copy(a)
		if len(state) == 6 && i%3 != 0 {
			bufs[i] = engine.AsType(bufs[i], engine.Float32) // as quantizeKV makes them
		}
	}
	if err := engine.Eval(bufs...); err != nil {
		return err
	}
	c.Keep, c.MaxSize, c.offset, c.idx = n[0], n[1], n[2], n[3]
	c.bufs, c.quantized, c.dtype = bufs, len(state) == 6, dt
	if !c.quantized {
		c.dtype = state[0].DType()
	}
	return nil
}

// checkQuantized checks keys then values (packed, scales, biases), each
// [B, Hk, n, ...], against group size g and bits b: packed uint32 words
// holding as many values as the groups of scales and biases (float).
func checkQuantized(state []*engine.Array, g, b int) error {
	if err := quant.Validate(b, g); err != nil {
		return err
	}
	for i, name := range []string{"keys", "values"} {
		w, s, bi := state[3*i], state[3*i+1], state[3*i+2]
		if w.DType() != engine.Uint32 || !s.DType().IsFloat() || !bi.DType().IsFloat() {
			return fmt.Errorf("%s: want uint32 packed words and float scales and biases, got %s, %s, %s", name, w.DType(), s.DType(), bi.DType())
		}
		if w.NDim() != 4 || s.NDim() != 4 || !sameShape(s.Shape(), bi.Shape()) || !sameShape(w.Shape()[:3], s.Shape()[:3]) || w.Dim(3)*32 != s.Dim(3)*g*b {
			return fmt.Errorf("%s: packed %v, scales %v and biases %v do not fit group size %d and %d bits", name, w.Shape(), s.Shape(), bi.Shape(), g, b)
		}
	}
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ints parses n integers of a meta_state.
func ints(meta []string, n int, what string) ([]int, error) {
	if len(meta) != n {
		return nil, fmt.Errorf("%s: want %d values, got %d", what, n, len(meta))
	}
	out := make([]int, n)
	for i, m := range meta {
		v, err := strconv.Atoi(m)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not an integer", what, m)
		}
		out[i] = v
	}
	return out, nil
}

// QuantizedKVCache stores keys and values MLX affine-quantized along Dh
// (packed uint32 [B, Hk, T, Dh·Bits/32], scales and biases [B, Hk, T,
// Dh/GroupSize]), from Start positions on: until then it is a standard
// cache, and it converts right after the update that brings its offset to
// Start or beyond, as mlx_lm's maybe_quantize_kv_cache (mlx_lm/generate.py)
// converts a KVCache after each model call once "c.offset >=
// quantized_kv_start": that update is attended in float, the next ones
// quantized. Start 0 converts after the first update. AttendCached attends
// the quantized keys and values (UpdateQuantized, as mlx_lm's
// quantized_scaled_dot_product_attention); Update returns them dequantized.
type QuantizedKVCache struct {
	GroupSize, Bits, Start int
	plain                  *KVCache // before conversion
	k, v                   [3]*engine.Array
	offset                 int
	dtype                  engine.DType
}

// NewQuantizedKVCache makes a cache that quantizes after start positions
// (groupSize 0 means 64, bits 0 means 8 as mlx_lm's QuantizedKVCache).
func NewQuantizedKVCache(groupSize, bits, start int) *QuantizedKVCache {
	if groupSize == 0 {
		groupSize = 64
	}
	if bits == 0 {
		bits = 8
	}
	return &QuantizedKVCache{GroupSize: groupSize, Bits: bits, Start: start, plain: &KVCache{}}
}

// Offset is the number of positions stored.
func (c *QuantizedKVCache) Offset() int {
	if c.plain != nil {
		return c.plain.offset
	}
	return c.offset
}

// Quantized reports whether the cache has converted.
func (c *QuantizedKVCache) Quantized() bool { return c.plain == nil }

// Update stores keys and values [B, Hk, L, Dh] and returns all stored,
// dequantized once converted.
func (c *QuantizedKVCache) Update(k, v *engine.Array) (*engine.Array, *engine.Array) {
	q, fk, fv := c.UpdateQuantized(k, v)
	if q == nil {
		return fk, fv
	}
	return q.dequantize(0, c.dtype), q.dequantize(1, c.dtype)
}

// UpdateQuantized stores keys and values [B, Hk, L, Dh] and, once
// converted, returns all stored quantized; before that the float keys and
// values (as Update).
func (c *QuantizedKVCache) UpdateQuantized(k, v *engine.Array) (*QuantizedKV, *engine.Array, *engine.Array) {
	fail := func(err error) (*QuantizedKV, *engine.Array, *engine.Array) {
		e := engine.Errorf("quantized kv cache: %v", err)
		return nil, e, e
	}
	if c.plain != nil {
		fk, fv := c.plain.Update(k, v)
		if c.plain.offset > 0 && c.plain.offset >= c.Start {
			// fk and fv read the float buffer, which nothing writes again.
			if err := c.convert(); err != nil {
				return fail(err)
			}
		}
		return nil, fk, fv
	}
	c.dtype = k.DType() // a restored cache learns it here
	L := k.Dim(2)
	if err := c.appendQuantized(k, v, c.offset, L); err != nil {
		return fail(err)
	}
	c.offset += L
	q := &QuantizedKV{GroupSize: c.GroupSize, Bits: c.Bits}
	for j := range 3 {
		q.Keys[j] = engine.SliceAxis(c.k[j], 2, 0, c.offset)
		q.Values[j] = engine.SliceAxis(c.v[j], 2, 0, c.offset)
	}
	return q, nil, nil
}

func (c *QuantizedKVCache) convert() error {
	p := c.plain
	c.plain = nil
	c.dtype = p.keys.DType()
	c.offset = p.offset
	return c.appendQuantized(engine.SliceAxis(p.keys, 2, 0, p.offset), engine.SliceAxis(p.values, 2, 0, p.offset), 0, p.offset)
}

func (c *QuantizedKVCache) appendQuantized(k, v *engine.Array, off, L int) error {
	for i, x := range []*engine.Array{k, v} {
		q, err := c.quantize(x)
		if err != nil {
			return err
		}
		for j := range 3 {
			buf := c.state(i)[j]
			if buf == nil || off+L > buf.Dim(2) {
				buf = grow(buf, q[j], off, L)
				if err := engine.Eval(buf); err != nil {
					return err
				}
				c.state(i)[j] = buf
			}
			if e := write(buf, q[j], off); e != nil {
				return e.Err()
			}
		}
	}
	return nil
}

func (c *QuantizedKVCache) state(i int) *[3]*engine.Array {
	if i == 0 {
		return &c.k
	}
	return &c.v
}

// quantize encodes x [B, Hk, L, Dh] with MLX's CPU encoder.
func (c *QuantizedKVCache) quantize(x *engine.Array) ([3]*engine.Array, error) {
	return quantizeKV(x, c.GroupSize, c.Bits)
}

// quantizeKV encodes keys or values [B, Hk, L, Dh] along Dh: packed
// [B, Hk, L, Dh·bits/32] uint32, scales and biases [B, Hk, L, Dh/group]
// float32.
func quantizeKV(x *engine.Array, groupSize, bits int) ([3]*engine.Array, error) {
	var out [3]*engine.Array
	s := x.Shape()
	dh := s[3]
	if dh%groupSize != 0 {
		return out, fmt.Errorf("head dim %d is not a multiple of --kv-group-size %d", dh, groupSize)
	}
	f, err := engine.AsType(x, engine.Float32).Float32s()
	if err != nil {
		return out, err
	}
	rows := len(f) / dh
	pc := quant.PackedCols(dh, bits)
	q := make([]uint32, rows*pc)
	sc := make([]float32, rows*dh/groupSize)
	bi := make([]float32, len(sc))
	if err := quant.QuantizeF32(f, dh, quant.Options{Bits: bits, GroupSize: groupSize}, q, sc, bi); err != nil {
		return out, err
	}
	out[0] = engine.FromUint32s(q, s[0], s[1], s[2], pc)
	out[1] = engine.FromFloat32s(sc, s[0], s[1], s[2], dh/groupSize)
	out[2] = engine.FromFloat32s(bi, s[0], s[1], s[2], dh/groupSize)
	return out, nil
}

// QuantizedKV is the keys and values a quantizing cache stores, each MLX
// affine-quantized along Dh: packed [B, Hk, T, Dh·Bits/32] uint32, scales
// and biases [B, Hk, T, Dh/GroupSize].
type QuantizedKV struct {
	Keys, Values    [3]*engine.Array
	GroupSize, Bits int
}

// dequantize returns the keys (i = 0) or values (1) [B, Hk, T, Dh] in dt.
func (q *QuantizedKV) dequantize(i int, dt engine.DType) *engine.Array {
	a := &q.Keys
	if i == 1 {
		a = &q.Values
	}
	return engine.AsType(engine.Dequantize(a[0], a[1], a[2], q.GroupSize, q.Bits), dt)
}

// QuantizedUpdater is implemented by caches that can give attention the
// keys and values they store quantized (AttendCached then attends them
// without dequantizing, as mlx_lm's quantized_scaled_dot_product_attention).
type QuantizedUpdater interface {
	// UpdateQuantized stores keys and values [B, Hk, L, Dh] as Update does
	// and returns what to attend: the quantized keys and values once the
	// cache holds them quantized, else (q nil) the float ones.
	UpdateQuantized(k, v *engine.Array) (q *QuantizedKV, fk, fv *engine.Array)
}

// Trimmable is true.
func (c *QuantizedKVCache) Trimmable() bool { return true }

// Settled: writes are evaluated in Update.
func (c *QuantizedKVCache) Settled() {}

// Trim drops the last n positions.
func (c *QuantizedKVCache) Trim(n int) int {
	if c.plain != nil {
		return c.plain.Trim(n)
	}
	n = min(n, c.offset)
	c.offset -= n
	return n
}

// State: before conversion the standard cache's; after, keys (packed,
// scales, biases) then values, trimmed to the offset.
func (c *QuantizedKVCache) State() []*engine.Array {
	if c.plain != nil {
		return c.plain.State()
	}
	var out []*engine.Array
	for i := range 2 {
		for _, a := range c.state(i) {
			out = append(out, engine.SliceAxis(a, 2, 0, c.offset))
		}
	}
	return out
}

// Restore sets a converted cache from State and Meta as saved (mlx_lm's
// QuantizedKVCache): keys (packed, scales, biases) then values, and
// offset, group_size, bits. dt is the dtype attention reads them in.
func (c *QuantizedKVCache) Restore(state []*engine.Array, meta []string, dt engine.DType) error {
	n, err := ints(meta, 3, "QuantizedKVCache meta_state (offset, group_size, bits)")
	if err != nil {
		return err
	}
	if len(state) != 6 {
		return fmt.Errorf("QuantizedKVCache state: want 6 arrays (keys and values: packed, scales, biases), got %d", len(state))
	}
	for _, a := range state {
		if a.NDim() != 4 || a.Dim(2) != n[0] {
			return fmt.Errorf("QuantizedKVCache state: array %v does not hold offset %d positions", a.Shape(), n[0])
		}
	}
	if err := checkQuantized(state, n[1], n[2]); err != nil {
		return fmt.Errorf("QuantizedKVCache state: %w", err)
	}
	c.plain, c.offset, c.GroupSize, c.Bits, c.dtype = nil, 0, n[1], n[2], dt
	for i := range 2 {
		for j := range 3 {
			a := state[3*i+j]
			if j > 0 {
				a = engine.AsType(a, engine.Float32) // mlx_lm's are in the model's dtype
			}
			shape := append([]int(nil), a.Shape()...)
			shape[2] = 0
			buf := grow(engine.Zeros(shape, a.DType()), a, 0, a.Dim(2))
			if err := engine.Eval(buf); err != nil {
				return err
			}
			if e := write(buf, a, 0); e != nil {
				return e.Err()
			}
			c.state(i)[j] = buf
		}
	}
	c.offset = n[0]
	return nil
}

// Meta: offset, group_size, bits once quantized (mlx_lm's meta_state).
func (c *QuantizedKVCache) Meta() []string {
	if c.plain != nil {
		return nil
	}
	return []string{fmt.Sprint(c.offset), fmt.Sprint(c.GroupSize), fmt.Sprint(c.Bits)}
}

// SavedCache is one layer of a prompt-cache file, in the form mlx_lm's
// save_prompt_cache (mlx_lm/models/cache.py) writes it: Class is the
// Python class name (type(c).__name__), Arrays the layer's state tree
// flattened to dotted paths under the layer (tree_flatten: "0" keys and "1"
// values of a KVCache; "0.2" the biases of a QuantizedKVCache's keys), and
// Meta its meta_state strings (none for a class without one). Layer is the
// layer's index, for messages.
type SavedCache struct {
	Layer  int
	Class  string
	Arrays map[string]*engine.Array
	Meta   []string
}

// Name is the file's name of the tensor at path p under the layer.
func (s SavedCache) Name(p string) string { return fmt.Sprintf("%d.%s", s.Layer, p) }

// Expect checks that the layer holds exactly the tensors at paths (what
// says what they are) and returns them in that order; the error names the
// first missing or unexpected tensor.
func (s SavedCache) Expect(what string, paths ...string) ([]*engine.Array, error) {
	out := make([]*engine.Array, len(paths))
	want := make(map[string]bool, len(paths))
	for i, p := range paths {
		a, ok := s.Arrays[p]
		if !ok {
			return nil, fmt.Errorf("missing tensor %q (want %s: %s)", s.Name(p), what, s.names(paths))
		}
		out[i], want[p] = a, true
	}
	for _, p := range sortedKeys(s.Arrays) {
		if !want[p] {
			return nil, fmt.Errorf("unexpected tensor %q (want %s: %s)", s.Name(p), what, s.names(paths))
		}
	}
	return out, nil
}

func (s SavedCache) names(paths []string) string {
	out := ""
	for i, p := range paths {
		if i > 0 {
			out += ", "
		}
		out += s.Name(p)
	}
	return out
}

func sortedKeys(m map[string]*engine.Array) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// CacheSaver is implemented by caches that prompt-cache files can hold.
type CacheSaver interface {
	SaveCache() (SavedCache, error)
}

// CacheLoader rebuilds a cache from its saved form.
type CacheLoader func(s SavedCache) (Cache, error)

var cacheLoaders = map[string]CacheLoader{}

// RegisterCacheClass makes LoadCache rebuild caches of the mlx_lm class
// name with load (architectures with their own cache types register them
// in an init function). It panics when the class is registered twice.
func RegisterCacheClass(class string, load CacheLoader) {
	if _, dup := cacheLoaders[class]; dup {
		panic("model: cache class " + class + " registered twice")
	}
	cacheLoaders[class] = load
}

func init() {
	RegisterCacheClass("KVCache", loadKVCache)
	RegisterCacheClass("RotatingKVCache", loadRotatingKVCache)
	RegisterCacheClass("QuantizedKVCache", loadQuantizedKVCache)
	RegisterCacheClass(quantizedRotatingClass, loadRotatingKVCache)
}

// quantizedRotatingClass is the class of a RotatingKVCache that quantized
// (--max-kv-size with --kv-bits, which mlx_lm refuses): an mlxgo class, so
// that mlx_lm reports an unknown class rather than misreading the state.
const quantizedRotatingClass = "QuantizedRotatingKVCache"

// SaveCache returns the saved form of c.
func SaveCache(c Cache) (SavedCache, error) {
	s, ok := c.(CacheSaver)
	if !ok {
		return SavedCache{}, fmt.Errorf("cache type %T has no prompt-cache form", c)
	}
	return s.SaveCache()
}

// LoadCache rebuilds a cache from its saved form, by its class.
func LoadCache(s SavedCache) (Cache, error) {
	load, ok := cacheLoaders[s.Class]
	if !ok {
		known := make([]string, 0, len(cacheLoaders))
		for k := range cacheLoaders {
			known = append(known, k)
		}
		slices.Sort(known)
		return nil, fmt.Errorf("unknown cache class %q (known: %s)", s.Class, strings.Join(known, ", "))
	}
	return load(s)
}

// OffsetRestorer is implemented by caches whose saved form does not record
// how many tokens they have seen (mlx_lm's ArraysCache); the prompt-cache
// loader sets it from the other layers.
type OffsetRestorer interface {
	RestoreOffset(n int)
}

var (
	kvPaths        = []string{"0", "1"}
	quantizedPaths = []string{"0.0", "0.1", "0.2", "1.0", "1.1", "1.2"}
)

const (
	kvWhat        = "keys and values [B, Hk, T, Dh]"
	quantizedWhat = "keys then values as (packed, scales, biases)"
)

// SaveCache: class KVCache, state (keys, values), no meta_state.
func (c *KVCache) SaveCache() (SavedCache, error) {
	st := c.State()
	if st == nil {
		return SavedCache{}, fmt.Errorf("KVCache is empty")
	}
	return SavedCache{Class: "KVCache", Arrays: map[string]*engine.Array{"0": st[0], "1": st[1]}}, nil
}

func loadKVCache(s SavedCache) (Cache, error) {
	if len(s.Meta) != 0 {
		return nil, fmt.Errorf("KVCache has no meta_state, got %d values", len(s.Meta))
	}
	st, err := s.Expect(kvWhat, kvPaths...)
	if err != nil {
		return nil, err
	}
	k, v := st[0], st[1]
	if k.NDim() != 4 || v.NDim() != 4 || !sameShape(k.Shape()[:3], v.Shape()[:3]) || !k.DType().IsFloat() || k.DType() != v.DType() {
		return nil, fmt.Errorf("keys %s%v and values %s%v must both be [B, Hk, T, Dh] of one float dtype", k.DType(), k.Shape(), v.DType(), v.Shape())
	}
	c := &KVCache{}
	if err := c.SetState(k, v); err != nil {
		return nil, err
	}
	return c, nil
}

// SaveCache: class RotatingKVCache, state (keys, values) in storage order,
// meta_state (keep, max_size, offset, _idx) as mlx_lm; once quantized,
// class QuantizedRotatingKVCache with keys and values as (packed, scales,
// biases) and group_size, bits after _idx.
func (c *RotatingKVCache) SaveCache() (SavedCache, error) {
	st := c.State()
	if st == nil {
		return SavedCache{}, fmt.Errorf("RotatingKVCache is empty")
	}
	s := SavedCache{Class: "RotatingKVCache", Arrays: map[string]*engine.Array{}, Meta: c.Meta()}
	paths := kvPaths
	if c.quantized {
		s.Class, paths = quantizedRotatingClass, quantizedPaths
	}
	for i, p := range paths {
		s.Arrays[p] = st[i]
	}
	return s, nil
}

func loadRotatingKVCache(s SavedCache) (Cache, error) {
	paths, what, meta := kvPaths, kvWhat, "keep, max_size, offset, _idx"
	if s.Class == quantizedRotatingClass {
		paths, what, meta = quantizedPaths, quantizedWhat, meta+", group_size, bits"
	}
	if n := len(strings.Split(meta, ",")); len(s.Meta) != n {
		return nil, fmt.Errorf("%s meta_state: want %d values (%s), got %d", s.Class, n, meta, len(s.Meta))
	}
	st, err := s.Expect(what, paths...)
	if err != nil {
		return nil, err
	}
	if len(st) == 2 && (!st[0].DType().IsFloat() || st[0].DType() != st[1].DType()) {
		return nil, fmt.Errorf("keys %s and values %s must be of one float dtype", st[0].DType(), st[1].DType())
	}
	c := &RotatingKVCache{}
	if err := c.Restore(st, s.Meta, engine.Float32); err != nil {
		return nil, err
	}
	return c, nil
}

// SaveCache: before conversion the standard cache's (class KVCache, as
// mlx_lm's cache before --quantized-kv-start); after, class
// QuantizedKVCache with keys and values as (packed, scales, biases) and
// meta_state (offset, group_size, bits). Scales and biases stay float32
// (mlx_lm's are in the model's dtype; both load either).
func (c *QuantizedKVCache) SaveCache() (SavedCache, error) {
	if c.plain != nil {
		return c.plain.SaveCache()
	}
	st := c.State()
	s := SavedCache{Class: "QuantizedKVCache", Arrays: map[string]*engine.Array{}, Meta: c.Meta()}
	for i, p := range quantizedPaths {
		s.Arrays[p] = st[i]
	}
	return s, nil
}

func loadQuantizedKVCache(s SavedCache) (Cache, error) {
	if len(s.Meta) != 3 {
		return nil, fmt.Errorf("QuantizedKVCache meta_state: want 3 values (offset, group_size, bits), got %d", len(s.Meta))
	}
	st, err := s.Expect(quantizedWhat, quantizedPaths...)
	if err != nil {
		return nil, err
	}
	c := &QuantizedKVCache{}
	if err := c.Restore(st, s.Meta, engine.Float32); err != nil {
		return nil, err
	}
	return c, nil
}

// ApplyCacheOptions adapts loaded caches to the generate flags, as
// mlx_lm's generate_step does by calling maybe_quantize_kv_cache on a
// prompt cache after each model call: with o.KVBits > 0 a standard cache
// becomes a QuantizedKVCache holding it, which converts after the first
// update that leaves its offset >= o.QuantizedKVStart (a cache loaded past
// the start attends its next update in float, then converts, as mlx_lm's),
// and a rotating cache that has not quantized quantizes likewise (mlx_lm's
// raises NotImplementedError). Other caches are returned as they are.
func ApplyCacheOptions(caches []Cache, o CacheOptions) []Cache {
	if o.KVBits <= 0 {
		return caches
	}
	g := o.KVGroupSize
	if g == 0 {
		g = 64
	}
	out := make([]Cache, len(caches))
	for i, c := range caches {
		out[i] = c
		switch c := c.(type) {
		case *KVCache:
			out[i] = &QuantizedKVCache{GroupSize: g, Bits: o.KVBits, Start: o.QuantizedKVStart, plain: c}
		case *RotatingKVCache:
			if !c.quantized {
				c.Bits, c.GroupSize, c.Start = o.KVBits, g, o.QuantizedKVStart
			}
		}
	}
	return out
}
