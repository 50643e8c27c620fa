package convert

import (
	"context"
	"fmt"
	"io"

	"github.com/mlxgo/mlxgo/pkg/kernels"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// prefetchMax is the largest next tensor whose pages are read ahead while
// the current one is processed.
const prefetchMax = 256 << 20

// buffers are reused from tensor to tensor, so the heap holds about one
// output tensor plus a few chunks, whatever the model size.
type buffers struct {
	out      outBuf // output tensor(s)
	gather   []byte // rows gathered from several sources
	conv     []byte // a chunk cast to the working dtype
	tmp      []byte // cast scratch
	align    []byte // unaligned source views
	w, s, b  []byte // dequantize inputs
	cs, cb   []byte // dequantize scales/biases cast
	al2, al3 []byte
	wide     []byte // a half chunk widened to float32 (float modes)
}

func align8(n int) int { return (n + 7) &^ 7 }

// outBuf holds the output tensor being made. From 1 MiB on it is an
// anonymous mapping outside the Go heap: the GC heap goal then does not
// double over it while a stepped plan's slabs (model.ApplyPlan's buffers)
// come and go, so the peak stays about one output tensor.
type outBuf struct {
	b      []byte
	mapped bool
}

func (o *outBuf) get(n int) []byte {
	if cap(o.b) >= n {
		return o.b[:n]
	}
	o.free()
	if n >= 1<<20 {
		if b, ok := mapAnon(n); ok {
			o.b, o.mapped = b, true
			return b
		}
	}
	o.b = make([]byte, n)
	return o.b
}

func (o *outBuf) free() {
	if o.mapped {
		unmapAnon(o.b)
	}
	o.b, o.mapped = nil, false
}

// write streams every job into a temporary folder beside o.MLXPath, adds
// config, tokenizer and side files and the model card, and renames the
// folder into place (mlxdir).
func (p *planned) write(ctx context.Context, o Options, src, repoID string, cfg *mlxdir.Config, out io.Writer) (res *Result, err error) {
	f, err := mlxdir.Create(o.MLXPath)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	defer f.Abort()
	w, err := f.NewWriter(p.specs, o.shardSize)
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	idx := w.Index()
	res = &Result{Path: f.Path, Shards: w.Shards(), TotalSize: idx.TotalSize, TotalParameters: idx.TotalParameters,
		BitsPerWeight: bitsPerWeight(idx), Quantized: p.quantized, Dequantized: p.dequant}
	if o.Quantize {
		fmt.Fprintf(out, "[INFO] Quantized model with %.3f bits per weight.\n", res.BitsPerWeight)
	}
	if err := p.stream(ctx, w, o.Progress, res); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	cfg.SetQuantization(p.qobj, p.dropQuant)
	if _, err := f.WriteMeta(cfg, src, mlxdir.Card(ctx, o.Hub, repoID)); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	if res.Files, err = f.Commit(false); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	return res, nil
}

// stream runs the jobs in order, releasing each source tensor's pages after
// its last use and reading the next job's pages ahead.
func (p *planned) stream(ctx context.Context, w *st.Writer, progress io.Writer, res *Result) error {
	lastUse := map[string]int{}
	for i, j := range p.jobs {
		for _, s := range j.sources() {
			lastUse[s.Name] = i
		}
	}
	var total int64
	for _, e := range p.all {
		total += e.NumBytes()
	}
	res.SourceBytes = total
	bar := mlxdir.NewBar(progress, "Converting", total)
	var bufs buffers
	defer bufs.out.free()
	var doneBytes int64
	for i, j := range p.jobs {
		if err := ctx.Err(); err != nil {
			bar.Abort()
			return err
		}
		if i+1 < len(p.jobs) {
			var n int64
			next := p.jobs[i+1].sources()
			for _, s := range next {
				n += s.NumBytes()
			}
			if n <= prefetchMax {
				for _, s := range next {
					s.WillNeed()
				}
			}
		}
		if err := j.run(ctx, w, &bufs); err != nil {
			bar.Abort()
			return fmt.Errorf("convert: %s: %w", j.in.name, err)
		}
		seen := map[string]bool{}
		for _, s := range j.sources() {
			if lastUse[s.Name] == i && !seen[s.Name] {
				seen[s.Name] = true
				s.Release()
				bar.Add(s.NumBytes())
				doneBytes += s.NumBytes()
			}
		}
	}
	bar.Add(total - doneBytes) // tensors the sanitize plan dropped
	bar.Finish()
	return nil
}

func (j *job) run(ctx context.Context, w *st.Writer, bufs *buffers) error {
	switch j.kind {
	case jobQuantize:
		return j.quantize(ctx, w, bufs)
	case jobDequantize:
		return j.dequantize(w, bufs)
	}
	in := j.in
	if j.to == in.dtype {
		if b, ok := in.whole(); ok {
			return w.WriteTensor(in.name, b)
		}
		if in.stepped && !in.slabs { // ApplyPlan's buffer is the output
			b, err := in.apply()
			if err != nil {
				return err
			}
			return w.WriteTensor(in.name, b)
		}
	}
	osz := dtypeSize(j.to)
	rowOut := in.rowLen * osz
	dst := bufs.out.get(in.rows * rowOut)
	err := in.chunks(&bufs.gather, func(row int, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := len(data) / in.esize
		castInto(dst[row*rowOut:row*rowOut+n*osz], j.to, data, in.dtype, &bufs.tmp)
		return nil
	})
	if err != nil {
		return err
	}
	return w.WriteTensor(in.name, dst)
}

func (j *job) quantize(ctx context.Context, w *st.Writer, bufs *buffers) error {
	if quant.IsFloatMode(j.set.Mode) {
		return j.quantizeFP(ctx, w, bufs)
	}
	in := j.in
	cols, opts := in.rowLen, j.set.Options()
	pc, ng := quant.PackedCols(cols, j.set.Bits), cols/j.set.GroupSize
	osz := dtypeSize(j.to)
	qb, sb := in.rows*pc*4, in.rows*ng*osz
	buf := bufs.out.get(align8(qb) + 2*align8(sb))
	qAll := asU32(buf[:qb], nil)
	sAll := buf[align8(qb) : align8(qb)+sb]
	bAll := buf[align8(qb)+align8(sb) : align8(qb)+align8(sb)+sb]
	err := in.chunks(&bufs.gather, func(row int, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := len(data) / in.esize / cols
		src := data
		if in.dtype != j.to {
			src = grow(&bufs.conv, n*cols*osz)
			castInto(src, j.to, data, in.dtype, &bufs.tmp)
		}
		q := qAll[row*pc : (row+n)*pc]
		s, b := sAll[row*ng*osz:(row+n)*ng*osz], bAll[row*ng*osz:(row+n)*ng*osz]
		if j.to == st.F32 {
			return quant.QuantizeF32(asF32(src, &bufs.align), cols, opts, q, asF32(s, nil), asF32(b, nil))
		}
		return quant.QuantizeHalf(asU16(src, &bufs.align), halfKind(j.to), cols, opts, q, asU16(s, nil), asU16(b, nil))
	})
	if err != nil {
		return err
	}
	for i, data := range [][]byte{buf[:qb], sAll, bAll} {
		if err := w.WriteTensor(j.specs[i].Name, data); err != nil {
			return err
		}
	}
	return nil
}

func (j *job) dequantize(w *st.Writer, bufs *buffers) error {
	wb, err := j.in.gather(&bufs.w)
	if err != nil {
		return err
	}
	if quant.IsFloatMode(j.set.Mode) {
		return j.dequantizeFP(w, wb, bufs)
	}
	sb, err := j.scales.gather(&bufs.s)
	if err != nil {
		return err
	}
	bb, err := j.biases.gather(&bufs.b)
	if err != nil {
		return err
	}
	if j.scales.dtype != j.to {
		n := len(sb) / j.scales.esize * dtypeSize(j.to)
		cs, cb := grow(&bufs.cs, n), grow(&bufs.cb, n)
		castInto(cs, j.to, sb, j.scales.dtype, &bufs.tmp)
		castInto(cb, j.to, bb, j.biases.dtype, &bufs.tmp)
		sb, bb = cs, cb
	}
	q := asU32(wb, &bufs.align)
	cols := j.specs[0].Shape[len(j.specs[0].Shape)-1]
	osz := dtypeSize(j.to)
	dst := bufs.out.get(j.in.rows * cols * osz)
	opts := j.set.Options()
	if j.to == st.F32 {
		err = quant.DequantizeF32(q, asF32(sb, &bufs.al2), asF32(bb, &bufs.al3), cols, opts, asF32(dst, nil))
	} else {
		err = quant.DequantizeHalfTo(q, asU16(sb, &bufs.al2), asU16(bb, &bufs.al3), halfKind(j.to), cols, opts, asU16(dst, nil))
	}
	if err != nil {
		return err
	}
	return w.WriteTensor(j.in.name, dst)
}

// quantizeFP encodes a layer in a float mode (quant.QuantizeFP): each chunk
// of rows is cast to the output dtype (as mlx_lm casts before quantizing),
// widened to float32 and encoded; uint8 scales, no biases.
func (j *job) quantizeFP(ctx context.Context, w *st.Writer, bufs *buffers) error {
	in := j.in
	cols := in.rowLen
	pc, ng := quant.PackedCols(cols, j.set.Bits), cols/j.set.GroupSize
	qb, sb := in.rows*pc*4, in.rows*ng
	buf := bufs.out.get(align8(qb) + sb)
	qAll := asU32(buf[:qb], nil)
	sAll := buf[align8(qb) : align8(qb)+sb]
	err := in.chunks(&bufs.gather, func(row int, data []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := len(data) / in.esize / cols
		src := data
		if in.dtype != j.to {
			src = grow(&bufs.conv, n*cols*dtypeSize(j.to))
			castInto(src, j.to, data, in.dtype, &bufs.tmp)
		}
		var f []float32
		if j.to == st.F32 {
			f = asF32(src, &bufs.align)
		} else {
			f = asF32(grow(&bufs.wide, 4*n*cols), nil)
			kernels.HalfToF32Slice(f, asU16(src, &bufs.align), halfKind(j.to))
		}
		return quant.QuantizeFP(f, cols, j.set.Mode, qAll[row*pc:(row+n)*pc], sAll[row*ng:(row+n)*ng])
	})
	if err != nil {
		return err
	}
	if err := w.WriteTensor(j.specs[0].Name, buf[:qb]); err != nil {
		return err
	}
	return w.WriteTensor(j.specs[1].Name, sAll)
}

// dequantizeFP decodes a float-mode layer (quant.DequantizeFP, float32)
// and rounds it to j.to, bfloat16 as mx.dequantize's default for these
// modes (the decoded values are exact in bfloat16).
func (j *job) dequantizeFP(w *st.Writer, wb []byte, bufs *buffers) error {
	sb, err := j.scales.gather(&bufs.s)
	if err != nil {
		return err
	}
	q := asU32(wb, &bufs.align)
	cols := j.specs[0].Shape[len(j.specs[0].Shape)-1]
	fb := grow(&bufs.wide, 4*j.in.rows*cols)
	if err := quant.DequantizeFP(q, sb, cols, j.set.Mode, asF32(fb, nil)); err != nil {
		return err
	}
	dst := bufs.out.get(j.in.rows * cols * dtypeSize(j.to))
	castInto(dst, j.to, fb, st.F32, &bufs.tmp)
	return w.WriteTensor(j.in.name, dst)
}
