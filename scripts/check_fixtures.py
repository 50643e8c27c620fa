#!/usr/bin/env python3
"""Consistency checks of testdata/models and testdata/lora (standard library only).

Checks file layout, safetensors headers against reference.json, the 1:1 tokenizer,
config spelling, adapter names/shapes/orientation, that the PEFT adapter is the
transpose of the mlx one, and that each MLX-quantized weight decodes (scale*q + bias)
to within half a quantization step of the f32 checkpoint it came from.

    python3 scripts/check_fixtures.py [testdata]

Prints one line per problem and "N passed, M failed" last; exit status 1 on failure.
"""

import json
import os
import struct
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "testdata")
PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("FAIL:", what)


def st_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        hdr = json.loads(f.read(n))
    size = os.path.getsize(path)
    meta = hdr.pop("__metadata__", {})
    end = max((v["data_offsets"][1] for v in hdr.values()), default=0)
    check(8 + n + end == size, "%s: data does not end at file end" % path)
    return hdr, meta, 8 + n


ITEM = {"F32": 4, "BF16": 2, "F16": 2, "U32": 4, "I32": 4, "U8": 1, "BOOL": 1}


def st_floats(path, name):
    """Tensor `name` as a flat list of Python floats (F32, BF16) or ints (U32)."""
    hdr, _, base = st_header(path)
    t = hdr[name]
    a, b = t["data_offsets"]
    with open(path, "rb") as f:
        f.seek(base + a)
        raw = f.read(b - a)
    if t["dtype"] == "F32":
        return list(struct.unpack("<%df" % (len(raw) // 4), raw)), t["shape"]
    if t["dtype"] == "BF16":
        u = struct.unpack("<%dH" % (len(raw) // 2), raw)
        return [struct.unpack("<f", struct.pack("<I", x << 16))[0] for x in u], t["shape"]
    if t["dtype"] == "U32":
        return list(struct.unpack("<%dI" % (len(raw) // 4), raw)), t["shape"]
    raise ValueError(t["dtype"])


def check_model_dir(d, vocab):
    name = os.path.basename(d)
    files = set(os.listdir(d))
    for f in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
              "tokenizer_config.json", "reference.json", "reference.safetensors"]:
        check(f in files, "%s: missing %s" % (name, f))
    cfg = json.load(open(os.path.join(d, "config.json")))
    ref = json.load(open(os.path.join(d, "reference.json")))
    hdr, meta, _ = st_header(os.path.join(d, "model.safetensors"))
    check({k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in hdr.items()} == ref["tensors"],
          "%s: reference.json tensors differ from model.safetensors" % name)
    dtypes = {v["dtype"] for v in hdr.values()}
    if name.endswith("-f32"):
        check(dtypes == {"F32"}, "%s: dtypes %s" % (name, dtypes))
    elif name.endswith("-bf16"):
        check(dtypes <= {"BF16", "F32"} and "BF16" in dtypes, "%s: dtypes %s" % (name, dtypes))
    else:
        check("U32" in dtypes and "quantization" in cfg and cfg.get("quantization") == cfg.get("quantization_config"),
              "%s: not an MLX-quantized folder" % name)
        check(meta.get("format") == "mlx", "%s: safetensors metadata %s" % (name, meta))
    legacy = ref["config_spelling"] == "legacy"
    check(("rope_parameters" not in cfg) == legacy and ("rope_theta" in cfg) == legacy,
          "%s: config spelling is not %s" % (name, ref["config_spelling"]))
    check(("torch_dtype" in cfg) == legacy and ("dtype" in cfg) != legacy, "%s: dtype key spelling" % name)
    check(cfg["vocab_size"] == 512, "%s: vocab_size" % name)
    # tokenizer: 1:1 characters
    tok = json.load(open(os.path.join(d, "tokenizer.json")))
    check(tok["model"]["vocab"] == vocab and tok["model"]["merges"] == [] and tok["decoder"] == {"type": "Fuse"},
          "%s: tokenizer.json differs" % name)
    check([vocab[c] for c in ref["text"]] == ref["input_ids"], "%s: input_ids are not the text's characters" % name)
    g = ref["greedy"]
    check([vocab[c] for c in g["prompt"]] == g["prompt_ids"], "%s: prompt ids" % name)
    check(len(g["ids"]) == len(g["margins"]) == g["steps"] and min(g["margins"]) == g["min_margin"] > 0,
          "%s: greedy record" % name)
    inv = {v: k for k, v in vocab.items()}
    check("".join(inv[i] for i in g["ids"]) == g["text"], "%s: greedy text" % name)
    rh, _, _ = st_header(os.path.join(d, "reference.safetensors"))
    check(rh["logits"]["shape"] == [len(ref["logits_positions"]), 512] and rh["logits"]["dtype"] == "F32",
          "%s: logits shape %s" % (name, rh["logits"]["shape"]))
    check(rh["batch_logits"]["shape"] == [2, len(ref["batch"]["positions"]), 512], "%s: batch_logits shape" % name)
    b = ref["batch"]
    check(b["input_ids"][0] == ref["input_ids"] and sum(b["attention_mask"][1]) == b["lengths"][1],
          "%s: batch rows" % name)
    c = ref["checks"]
    check(c["tokenizer"]["tokenizers_lib_ok"] is True, "%s: tokenizers library check" % name)
    for k in ["batch_row0_vs_single_max_abs", "batch_row1_vs_single_max_abs"]:
        check(isinstance(c[k], float) and c[k] < 1e-5, "%s: %s = %s" % (name, k, c[k]))
    check(isinstance(c.get("f32_vs_f64_rel_err"), float) and c["f32_vs_f64_rel_err"] < 1e-5,
          "%s: f32 vs f64 %s" % (name, c.get("f32_vs_f64_rel_err")))
    if "reload_max_abs" in c:
        check(c["reload_max_abs"] == 0.0, "%s: reload differs %s" % (name, c["reload_max_abs"]))
    for an, v in c.get("ablations_max_abs_logit_change", {}).items():
        check(isinstance(v, float) and v > 1e-3, "%s: ablation %s changed logits by %s" % (name, an, v))
    return cfg, ref


def check_quantized(d):
    name = os.path.basename(d)
    src = d.rsplit("-", 1)[0] + "-f32"
    cfg = json.load(open(os.path.join(d, "config.json")))
    bits, group = cfg["quantization"]["bits"], cfg["quantization"]["group_size"]
    qpath = os.path.join(d, "model.safetensors")
    hdr, _, _ = st_header(qpath)
    for base in ["model.layers.0.self_attn.k_proj", "model.layers.1.mlp.down_proj", "model.embed_tokens"]:
        packed, pshape = st_floats(qpath, base + ".weight")
        scales, sshape = st_floats(qpath, base + ".scales")
        biases, _ = st_floats(qpath, base + ".biases")
        w, wshape = st_floats(os.path.join(src, "model.safetensors"), base + ".weight")
        out_d, in_d = wshape
        check(pshape == [out_d, in_d * bits // 32] and sshape == [out_d, in_d // group],
              "%s: %s shapes %s %s" % (name, base, pshape, sshape))
        per = 32 // bits
        mask = (1 << bits) - 1
        worst = 0.0
        within = 0
        for r in range(out_d):
            for j in range(in_d):
                word = packed[r * (in_d // per) + j // per]
                q = (word >> ((j % per) * bits)) & mask
                gi = r * (in_d // group) + j // group
                s, bb = scales[gi], biases[gi]
                deq = s * q + bb
                err = abs(deq - w[r * in_d + j]) / (abs(s) + 1e-12)
                worst = max(worst, err)
                within += err <= 0.5001
        # MLX's encoder makes 0 exact (scale = edge / round(edge / scale)), so a group's far end
        # can be clipped by up to about one step; a wrong bit layout is off by many steps.
        frac = within / float(out_d * in_d)
        check(worst <= 1.5 and frac >= 0.98, "%s: %s decodes up to %.3f steps from the f32 weight (%.4f within "
              "half a step)" % (name, base, worst, frac))


def check_lora(root):
    lr = os.path.join(root, "lora")
    keys = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]
    base_hdr, _, _ = st_header(os.path.join(root, "models", "llama-f32", "model.safetensors"))
    for kind in ["lora", "dora"]:
        d = os.path.join(lr, kind)
        ac = json.load(open(os.path.join(d, "adapter_config.json")))
        check(ac["fine_tune_type"] == kind and ac["lora_parameters"] == {"rank": 4, "dropout": 0.0, "scale": 2.0},
              "lora/%s: adapter_config" % kind)
        ah, ameta, _ = st_header(os.path.join(d, "adapters.safetensors"))
        gh, _, _ = st_header(os.path.join(d, "grads.safetensors"))
        gsh, _, _ = st_header(os.path.join(d, "grads_strict_mask.safetensors"))
        want = {}
        for layer in range(2):
            for k in keys:
                p = "model.layers.%d.%s" % (layer, k)
                out_d, in_d = base_hdr[p + ".weight"]["shape"]
                want[p + ".lora_a"] = [in_d, 4]
                want[p + ".lora_b"] = [4, out_d]
                if kind == "dora":
                    want[p + ".m"] = [out_d]
        for h, label in [(ah, "adapters"), (gh, "grads"), (gsh, "grads_strict_mask")]:
            check({k: v["shape"] for k, v in h.items()} == want, "lora/%s: %s names/shapes" % (kind, label))
            check({v["dtype"] for v in h.values()} == {"F32"}, "lora/%s: %s dtype" % (kind, label))
        ref = json.load(open(os.path.join(d, "reference.json")))
        m, s = ref["mlx_mask"], ref["strict_mask"]
        # mlx_lm mask: steps max(offset, 1) .. length (inclusive; includes the first pad target)
        check(m["ntoks"] == sum(l - max(o, 1) + 1 for o, l in ref["batch"]["lengths"])
              and s["ntoks"] == m["ntoks"] - len(ref["batch"]["lengths"]),
              "lora/%s: ntoks %s/%s" % (kind, m["ntoks"], s["ntoks"]))
        width = len(ref["batch"]["input_ids"][0])
        longest = max(l for _, l in ref["batch"]["lengths"])
        check(width == 1 + 32 * ((longest + 31) // 32), "lora/%s: batch width %d" % (kind, width))
        check(m["grads_f32_vs_f64_max_rel_err"] < 1e-4 and abs(m["loss"] - m["loss_f64"]) < 1e-5,
              "lora/%s: f32 vs f64" % kind)
        check(ref["checks"]["fused_vs_adapter_max_abs"] < 1e-4, "lora/%s: fused check" % kind)
    # PEFT adapter = transposed mlx adapter, alpha/r = scale
    d = os.path.join(lr, "peft")
    pc = json.load(open(os.path.join(d, "adapter_config.json")))
    check(pc["peft_type"] == "LORA" and pc["lora_alpha"] / pc["r"] == 2.0 and sorted(pc["target_modules"]) ==
          sorted(k.split(".")[1] for k in keys), "lora/peft: adapter_config")
    mlx = os.path.join(lr, "lora", "adapters.safetensors")
    peft = os.path.join(d, "adapter_model.safetensors")
    ph, _, _ = st_header(peft)
    check(len(ph) == 28, "lora/peft: %d tensors" % len(ph))
    for layer in range(2):
        for k in keys:
            p = "model.layers.%d.%s" % (layer, k)
            a, ashape = st_floats(mlx, p + ".lora_a")
            b, bshape = st_floats(mlx, p + ".lora_b")
            A, Ashape = st_floats(peft, "base_model.model.%s.lora_A.weight" % p)
            B, Bshape = st_floats(peft, "base_model.model.%s.lora_B.weight" % p)
            i, r = ashape
            o = bshape[1]
            check(Ashape == [r, i] and Bshape == [o, r], "lora/peft: %s shapes" % p)
            check(all(A[x * i + y] == a[y * r + x] for x in range(r) for y in range(i)), "lora/peft: %s A != a^T" % p)
            check(all(B[y * r + x] == b[x * o + y] for x in range(r) for y in range(o)), "lora/peft: %s B != b^T" % p)
    ref = json.load(open(os.path.join(d, "reference.json")))
    check(ref["checks"]["peft_vs_mlx_formula_max_abs"] < 1e-5, "lora/peft: logits differ from the mlx formula")
    # full fine-tune: gradient for every parameter of the small model
    d = os.path.join(lr, "full")
    mh, _, _ = st_header(os.path.join(d, "model", "model.safetensors"))
    gh, _, _ = st_header(os.path.join(d, "grads.safetensors"))
    check({k: v["shape"] for k, v in gh.items()} == {k: v["shape"] for k, v in mh.items()},
          "lora/full: grads do not cover the model's tensors")


def main():
    tok = json.load(open(os.path.join(ROOT, "models", "llama-f32", "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    check(len(vocab) == 512 and all(len(k) == 1 for k, v in vocab.items() if v >= 4), "vocabulary")
    md = os.path.join(ROOT, "models")
    for n in sorted(os.listdir(md)):
        d = os.path.join(md, n)
        if not os.path.isdir(d):
            continue
        check_model_dir(d, vocab)
        if n.endswith(("-q4", "-q8")):
            check_quantized(d)
    check_lora(ROOT)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
