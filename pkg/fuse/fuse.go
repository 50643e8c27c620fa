// Package fuse merges a trained adapter into its base model, as mlx_lm's
// fuse (mlx-compat.md §11): for every adapted module the base weight is
// dequantized if quantized, the adapter's change added (W + scale·bᵀ·aᵀ for
// a Linear, scale·a·b for an Embedding, per expert for MoE stacks, DoRA's
// row-norm rescale by m), and the layer re-quantized at the base's own
// width and mode (affine, or the float modes mxfp4, nvfp4 and mxfp8:
// fpquant.go) unless Dequantize is set; a full fine-tune's tensors replace the
// base's. The output is written through pkg/mlxdir, as convert's (sharded
// safetensors with the index, config.json with sorted keys, tokenizer and
// side files, model card: a hub base's own card metadata), in MLX layout
// (the model type's full sanitize plan, as mlx_lm saves the loaded model),
// tensor by tensor from the memory-mapped base, into a hidden temporary
// folder renamed into place at the end; a failed run leaves nothing. As mlx_lm, an existing --save-path may be
// written over, but only an empty folder or an earlier model (config.json)
// and never one holding the inputs, and it is replaced whole.
//
// mlxgo's additions: after re-quantizing, every adapted layer's share of
// the adapter's change that survived is measured (LayerReport) and one
// warning names the worst layers when it is below SurvivalThreshold (the
// lost-adapter problem, mlx-lm issue #1172); QBits/QGroupSize re-quantize
// every quantized layer at another width; Dequantize drops both
// quantization and quantization_config (mlx_lm leaves the second, which
// then names a quantization the weights no longer have); the GGUF export
// covers every family pkg/gguf writes, in F16 (default), BF16, F32, Q8_0 or
// Q4_0, and is checked before anything is written; a quantized fused model
// is exported from its dequantized layers, i.e. the values the MLX folder
// computes with (pass Dequantize for the unrounded fused weights).
package fuse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mlxgo/mlxgo/pkg/gguf"
	"github.com/mlxgo/mlxgo/pkg/hub"
	"github.com/mlxgo/mlxgo/pkg/lora"
	"github.com/mlxgo/mlxgo/pkg/mlxdir"
	"github.com/mlxgo/mlxgo/pkg/model"
	_ "github.com/mlxgo/mlxgo/pkg/model/all" // every architecture's sanitize plan
	"github.com/mlxgo/mlxgo/pkg/quant"
	st "github.com/mlxgo/mlxgo/pkg/safetensors"
)

// SurvivalThreshold is the default share of the adapter's change
// (LayerReport.Kept = 1 − Error) below which a re-quantized layer counts as
// having lost its adapter: the weight change the fused layer applies along
// the adapter's directions is then off from the trained one by more than
// half of its size (a change rounded away entirely reads 0). Measured on
// the llama-q4 fixture (4 bits, group 32, weights N(0, 0.1), so a step of
// about 0.03) with rank-4 adapters of scale 2: lora_b ~ N(0, 0.1) (changes
// of about one step) errs 0.01-0.04 per layer, N(0, 0.03) 0.15-0.35,
// N(0, 0.01) 0.79-0.91, N(0, 0.001) 0.7-1.8; re-quantized at 8 bits the
// same adapters err 0.002, 0.006, 0.02 and 0.5-0.7. 0.5 separates "kept,
// with some noise" from "mostly gone".
const SurvivalThreshold = 0.5

// Options are mlx_lm fuse's arguments plus mlxgo's.
type Options struct {
	Model       string // local folder or hub repo id ("" means mlx_model)
	AdapterPath string // "" means adapters
	SavePath    string // "" means fused_model
	Dequantize  bool
	// QBits and QGroupSize (0: the base's) re-quantize every quantized
	// layer of a quantized base at this width; the config's quantization
	// entry becomes the one width.
	QBits, QGroupSize int
	ExportGGUF        bool
	GGUFPath          string // inside SavePath; "" means ggml-model-f16.gguf
	GGUFType          string // f16 (default), bf16, f32, q8_0, q4_0
	UploadRepo        string

	// Threshold overrides SurvivalThreshold when > 0.
	Threshold float64
	// Out receives the progress lines and the survival summary or warning;
	// nil discards them.
	Out io.Writer
	// Hub resolves hub ids and uploads; nil means hub.NewClient().
	Hub *hub.Client
	// Progress receives the hub download's progress bar (nil: none).
	Progress io.Writer
	// Version names mlxgo in the uploaded model card.
	Version string

	shardSize int64 // tests: shard cap instead of 5 GiB
}

// Result describes a finished fuse.
type Result struct {
	Path        string
	Files       []string // the output folder's files, sorted
	Merged      int      // adapter modules (or full fine-tune tensors) applied
	Dequantized int      // quantized layers written in float without an adapter
	Requantized int      // quantized layers re-encoded at a new width without an adapter
	// Layers are the adapted layers written quantized, in the output order
	// (mlxdir.SortNames).
	Layers []LayerReport
	// Lost are the Layers whose Kept is below the threshold, worst first.
	Lost []LayerReport
	GGUF string // path of the GGUF file, if exported
}

// Fuse runs a fuse.
func Fuse(ctx context.Context, o Options) (*Result, error) {
	if o.Model == "" {
		o.Model = "mlx_model"
	}
	if o.AdapterPath == "" {
		o.AdapterPath = "adapters"
	}
	if o.SavePath == "" {
		o.SavePath = "fused_model"
	}
	if o.GGUFPath == "" {
		o.GGUFPath = "ggml-model-f16.gguf"
	}
	if o.Threshold <= 0 {
		o.Threshold = SurvivalThreshold
	}
	if o.Dequantize && (o.QBits != 0 || o.QGroupSize != 0) {
		return nil, errors.New("fuse: dequantize cannot be combined with a re-quantization width")
	}
	if o.QBits != 0 || o.QGroupSize != 0 {
		b, g := o.QBits, o.QGroupSize
		if b == 0 {
			b = quant.DefaultBits
		}
		if g == 0 {
			g = quant.DefaultGroupSize
		}
		if err := quant.Validate(b, g); err != nil {
			return nil, err
		}
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}

	fmt.Fprintln(out, "Loading pretrained model")
	src, repoID, err := resolve(ctx, &o)
	if err != nil {
		return nil, err
	}
	ad, err := lora.LoadAdapter(o.AdapterPath)
	if err != nil {
		return nil, err
	}
	cfg, err := mlxdir.ReadConfig(src)
	if err != nil {
		return nil, err
	}
	if err := cfg.CheckModelType(src); err != nil {
		return nil, err
	}
	var gt gguf.Type
	if o.ExportGGUF {
		if gt, err = checkGGUF(cfg, src, &o); err != nil {
			return nil, err
		}
	}
	dst := filepath.Clean(o.SavePath)
	exists, err := checkSavePath(dst, src, o.AdapterPath)
	if err != nil {
		return nil, err
	}

	m, err := st.OpenModel(src)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	p, err := plan(m, cfg, ad, &o)
	if err != nil {
		return nil, fmt.Errorf("fuse %s with %s: %w", src, o.AdapterPath, err)
	}
	if o.Dequantize && p.quantized {
		fmt.Fprintln(out, "Dequantizing model")
	}

	res := &Result{Path: dst, Merged: p.merged, Dequantized: p.dequant, Requantized: p.requant}
	folder, err := mlxdir.Create(dst)
	if err != nil {
		return nil, err
	}
	defer folder.Abort()
	w, err := folder.NewWriter(p.specs, o.shardSize)
	if err != nil {
		return nil, err
	}
	scale := float32(ad.Parameters.Scale)
	bar := mlxdir.NewBar(o.Progress, "Fusing", p.sourceBytes())
	for _, j := range p.jobs {
		if err := ctx.Err(); err != nil {
			bar.Abort()
			return nil, err
		}
		r, err := j.run(w, scale)
		if err != nil {
			bar.Abort()
			return nil, fmt.Errorf("fuse: %s: %w", j.name, err)
		}
		if r != nil {
			res.Layers = append(res.Layers, *r)
		}
		for _, s := range j.sources() {
			s.release()
			bar.Add(s.numBytes())
		}
	}
	bar.Finish()
	if err := w.Close(); err != nil {
		return nil, err
	}
	cfg.SetQuantization(p.qobj, p.dropQuant)
	cfgJSON, err := folder.WriteMeta(cfg, src, mlxdir.Card(ctx, o.Hub, repoID))
	if err != nil {
		return nil, err
	}
	report(out, res, o.Threshold)

	if o.ExportGGUF {
		fmt.Fprintln(out, "Exporting GGUF to", filepath.Join(dst, o.GGUFPath))
		if err := exportGGUF(folder.Dir, filepath.Clean(o.GGUFPath), gt, cfgJSON); err != nil {
			return nil, fmt.Errorf("--export-gguf: %w", err)
		}
		res.GGUF = filepath.Join(dst, filepath.Clean(o.GGUFPath))
	}
	if res.Files, err = folder.Commit(exists); err != nil {
		return nil, err
	}

	if o.UploadRepo != "" {
		if err := mlxdir.Upload(ctx, o.Hub, o.Progress, dst, o.UploadRepo, o.Version); err != nil {
			return res, err
		}
		fmt.Fprintf(out, "Upload successful, go to https://huggingface.co/%s for details.\n", o.UploadRepo)
	}
	return res, nil
}

// resolve finds the base model folder: a local path, else a hub snapshot.
// repoID is "" for a local folder.
func resolve(ctx context.Context, o *Options) (dir, repoID string, err error) {
	if _, err := os.Stat(o.Model); err == nil {
		return o.Model, "", nil
	}
	dir, err = hub.ResolveModel(ctx, o.Model, hub.ResolveOptions{Client: o.Hub, Progress: o.Progress})
	if err != nil {
		return "", "", fmt.Errorf("--model %s: %w", o.Model, err)
	}
	return dir, o.Model, nil
}

// report prints the survival summary, or one warning naming the layers
// that lost most of their adapter.
func report(out io.Writer, res *Result, threshold float64) {
	var measured []LayerReport
	zero := 0
	for _, l := range res.Layers {
		if math.IsNaN(l.Error) {
			zero++
			continue
		}
		measured = append(measured, l)
		if l.Kept < threshold {
			res.Lost = append(res.Lost, l)
		}
	}
	sort.SliceStable(res.Lost, func(i, k int) bool { return res.Lost[i].Error > res.Lost[k].Error })
	if len(measured) == 0 {
		if zero > 0 {
			fmt.Fprintf(out, "[INFO] The adapter changes none of the %d re-quantized layers it covers (its lora_b is zero?).\n", zero)
		}
		return
	}
	sort.SliceStable(measured, func(i, k int) bool { return measured[i].Error > measured[k].Error })
	width := widths(measured)
	if len(res.Lost) == 0 {
		fmt.Fprintf(out, "[INFO] Re-quantized %d adapted layers (%s): they keep %s to %s of the adapter's change (median %s).\n",
			len(measured), width, pct(measured[0].Kept), pct(measured[len(measured)-1].Kept), pct(measured[len(measured)/2].Kept))
		return
	}
	var worst []string
	for i, l := range res.Lost {
		if i == 5 {
			worst = append(worst, "…")
			break
		}
		worst = append(worst, fmt.Sprintf("%s keeps %s (error %.2f)", l.Path, pct(l.Kept), l.Error))
	}
	hint := "re-run with --dequantize to keep the fused layers in float"
	if minBits(res.Lost) < 8 {
		hint += ", or re-quantize with more bits (--q-bits 8)"
	}
	fmt.Fprintf(out, "[WARNING] Re-quantizing (%s) lost most of the adapter: %d of %d adapted layers keep less than %s of its change (worst: %s), so the fused model will not behave like the base with the adapter; %s.\n",
		width, len(res.Lost), len(measured), pct(threshold), strings.Join(worst, ", "), hint)
}

func pct(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }

func widths(ls []LayerReport) string {
	seen := map[string]bool{}
	var out []string
	for _, l := range ls {
		s := fmt.Sprintf("%d bits, group size %d", l.Bits, l.GroupSize)
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "; ")
}

func minBits(ls []LayerReport) int {
	b := 8
	for _, l := range ls {
		b = min(b, l.Bits)
	}
	return b
}

func settings(s model.QuantSpec) quant.Settings {
	return quant.Settings{GroupSize: s.GroupSize, Bits: s.Bits, Mode: s.Mode}
}

func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	return err == nil, err
}
