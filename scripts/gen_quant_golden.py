#!/usr/bin/env python3
"""Golden vectors for pkg/quant: MLX affine quantization, written from MLX's
published algorithm (ml-explore/mlx mlx/backend/cpu/quantized.cpp at
846d176227a0, and the Metal kernel in mlx/backend/metal/kernels/quantized.h)
in plain Python: every float32 operation is rounded to float32 with struct,
exactly one rounding per operation as C++ float arithmetic does.

Usage:
  python3 scripts/gen_quant_golden.py            # writes testdata/quant/golden.json.gz
  python3 scripts/gen_quant_golden.py --check OUTDIR
      # if `import mlx.core` works, quantize every case with real MLX on the
      # CPU and report where it differs from this script (mlx_check.json);
      # if torch is there, re-run the encoder vectorised in torch float32
      # (torch_check.json)

Nothing else writes testdata/quant/golden.json.gz; pkg/quant's TestGolden
only reads it. The output is reproducible byte for byte (fixed seed, gzip
mtime 0).
"""

import gzip
import json
import math
import os
import random
import struct
import sys

GENERATOR = "scripts/gen_quant_golden.py"
MLX_REF = "ml-explore/mlx 846d176227a0 (mlx/backend/cpu/quantized.cpp quantize)"

INF = float("inf")
NAN = float("nan")


# ---- float formats -------------------------------------------------------

def f32(x):
    """Round a Python float (double) to the nearest float32 (half to even)."""
    if x != x or x in (INF, -INF):
        return x
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(INF, x)


def f32_bits(x):
    if x != x:
        return 0x7FC00000
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bits_f32(u):
    return struct.unpack("<f", struct.pack("<I", u))[0]


def bf16_bits(x):
    """MLX's float -> bfloat16: NaN -> 0x7FC0, else round to nearest even."""
    if x != x:
        return 0x7FC0
    u = f32_bits(x)
    u = (u + ((u >> 16) & 1) + 0x7FFF) & 0xFFFFFFFF
    return u >> 16


def bits_bf16(h):
    return bits_f32(h << 16)


def f16_bits(x):
    if x != x:
        return 0x7E00
    try:
        return struct.unpack("<H", struct.pack("<e", x))[0]
    except OverflowError:
        return 0xFC00 if x < 0 else 0x7C00


def bits_f16(h):
    return struct.unpack("<e", struct.pack("<H", h))[0]


FORMATS = {
    # name: (to bits, from bits, largest finite)
    "f32": (f32_bits, bits_f32, bits_f32(0x7F7FFFFF)),
    "bf16": (bf16_bits, bits_bf16, bits_bf16(0x7F7F)),
    "f16": (f16_bits, bits_f16, 65504.0),
}


# ---- IEEE float32 arithmetic ---------------------------------------------

def div(a, b):
    """IEEE a/b for float32 operands, rounded to float32."""
    if b == 0:
        if a != a or a == 0:
            return NAN
        neg = (math.copysign(1, a) < 0) != (math.copysign(1, b) < 0)
        return -INF if neg else INF
    return f32(a / b)


def sub(a, b):
    return f32(a - b)


def rint(x):
    """C rint in round-to-nearest-even mode; NaN and inf pass through."""
    if x != x or x in (INF, -INF):
        return x
    return float(round(x))  # Python rounds half to even


def round_away(x):
    """Metal round: half away from zero."""
    if x != x or x in (INF, -INF):
        return x
    r = math.floor(abs(x) + 0.5)
    # abs(x) + 0.5 is exact for float32 x below 2**52
    return math.copysign(r, x)


def cpp_max(a, b):  # std::max
    return b if a < b else a


def cpp_min(a, b):  # std::min
    return b if b < a else a


EPS = f32(1e-7)  # `float eps = 1e-7;`


def encode_group(vals, bits, metal=False, max_finite=None):
    """vals: float32 values. Returns (codes, scale, bias) in float32."""
    n_bins = float((1 << bits) - 1)
    if metal:
        w_max, w_min = 0.0, max_finite
    else:
        w_max, w_min = -INF, INF
    for x in vals:
        w_max = cpp_max(w_max, x)
        w_min = cpp_min(w_min, x)
    rnd = round_away if metal else rint
    scale = cpp_max(div(sub(w_max, w_min), n_bins), EPS)
    mask = abs(w_min) > abs(w_max)
    if not mask:
        scale = -scale
    edge = w_min if mask else w_max
    q0 = rnd(div(edge, scale))
    bias = 0.0
    if q0 != 0:  # NaN != 0 is true, as in C++
        scale = div(edge, q0)
        bias = edge
    codes = []
    for x in vals:
        v = rnd(div(sub(x, bias), scale))
        v = cpp_min(cpp_max(v, 0.0), n_bins)
        codes.append(0 if v != v else int(v))  # NaN -> 0 (MLX's cast)
    return codes, scale, bias


def pack(codes, bits):
    """LSB-first little-endian bit stream as uint32 words."""
    acc, nb, out = 0, 0, []
    for c in codes:
        acc |= c << nb
        nb += bits
        while nb >= 32:
            out.append(acc & 0xFFFFFFFF)
            acc >>= 32
            nb -= 32
    assert nb == 0
    return out


# ---- inputs ----------------------------------------------------------------

def make_groups(g, fmt, rng):
    """(label, values) pairs; values are Python floats, rounded to fmt."""
    to_bits, from_bits, big = FORMATS[fmt]
    tiny = {"f32": 1e-40, "bf16": 1e-39, "f16": 3e-7}[fmt]
    groups = [
        ("normal*0.02", [rng.gauss(0, 0.02) for _ in range(g)]),
        ("uniform[-1,1]", [rng.uniform(-1, 1) for _ in range(g)]),
        ("all equal positive", [0.5] * g),
        ("all equal negative", [-0.75] * g),
        ("all zeros", [0.0] * g),
        ("negative zeros and zeros", [(-0.0 if i % 2 else 0.0) for i in range(g)]),
        ("all negative", [-rng.uniform(0.1, 3) for _ in range(g)]),
        ("all positive", [rng.uniform(0.1, 3) for _ in range(g)]),
        ("spans zero, max side larger", [rng.uniform(-0.5, 1.0) for _ in range(g)]),
        ("ties: integers and halves 0..15", [(i % 31) * 0.5 for i in range(g)]),
        ("ties: negative halves", [-(i % 17) * 0.5 for i in range(g)]),
        ("denormals", [rng.choice([-1, 1]) * tiny * rng.uniform(0, 4) for _ in range(g)]),
        ("tiny range around 1 (eps floor)", [1.0 + (i % 3) * 2 ** -20 for i in range(g)]),
        ("one outlier", [rng.gauss(0, 0.01) for _ in range(g - 1)] + [4.0]),
        ("large values", [rng.choice([-1, 1]) * big * rng.uniform(0.25, 1) for _ in range(g)]),
        ("large positive only", [big * rng.uniform(0.5, 1) for _ in range(g)]),
        ("all equal largest finite", [big] * g),
        ("+inf in group", [rng.gauss(0, 1) for _ in range(g - 1)] + [INF]),
        ("-inf in group", [-INF] + [rng.gauss(0, 1) for _ in range(g - 1)]),
        ("+inf and -inf", [INF, -INF] + [0.0] * (g - 2)),
        ("NaN in group", [rng.gauss(0, 1) for _ in range(g // 2)] + [NAN] + [rng.gauss(0, 1) for _ in range(g - g // 2 - 1)]),
        ("all NaN", [NAN] * g),
    ]
    out = []
    for label, vals in groups:
        out.append((label, [from_bits(to_bits(v)) for v in vals]))
    return out


def finite(vals):
    return all(v == v and v not in (INF, -INF) for v in vals)


def build():
    rng = random.Random(20260525)
    cases = []
    for fmt in ("f32", "bf16", "f16"):
        to_bits, from_bits, big = FORMATS[fmt]
        for g in (32, 64, 128):
            groups = make_groups(g, fmt, rng)
            # two groups per row: rows pair consecutive groups
            if len(groups) % 2:
                groups.append(("normal*0.02 (pad)", [from_bits(to_bits(rng.gauss(0, 0.02))) for _ in range(g)]))
            cols = 2 * g
            rows = len(groups) // 2
            flat = [v for _, vals in groups for v in vals]
            case = {
                "dtype": fmt,
                "group_size": g,
                "rows": rows,
                "cols": cols,
                "labels": [label for label, _ in groups],
                "input": [to_bits(v) if fmt != "f32" else f32_bits_keep(v) for v in flat],
                "quant": [],
            }
            for metal in (False, True):
                for bits in (2, 3, 4, 5, 6, 8):
                    if metal and (g != 64 or bits not in (3, 4)):
                        continue
                    packed, scales, biases = [], [], []
                    for _, vals in groups:
                        if metal and not finite(vals):
                            # Metal's NaN/inf behaviour is not reproduced
                            scales.append(None)
                            biases.append(None)
                            packed.extend([0] * (g * bits // 32))
                            continue
                        codes, s, b = encode_group(vals, bits, metal, big)
                        packed.extend(pack(codes, bits))
                        scales.append(to_bits(s))
                        biases.append(to_bits(b))
                    case["quant"].append({
                        "bits": bits,
                        "metal": metal,
                        "packed": packed,
                        "scales": scales,
                        "biases": biases,
                    })
            cases.append(case)
    return cases


def f32_bits_keep(x):
    """float32 bits keeping NaN canonical and -0.0's sign."""
    if x != x:
        return 0x7FC00000
    return struct.unpack("<I", struct.pack("<f", x))[0]


def check_mlx(cases, out_path):
    try:
        import mlx.core as mx
        import numpy as np
    except Exception as e:  # noqa: BLE001
        report = {"mlx_available": False, "error": repr(e)}
        json.dump(report, open(out_path, "w"), indent=1)
        print("mlx not importable:", e)
        return
    mx.set_default_device(mx.cpu)
    report = {"mlx_available": True, "mlx_version": getattr(mx, "__version__", "?"), "results": []}
    for c in cases:
        r, cols = c["rows"], c["cols"]
        if c["dtype"] == "f32":
            arr = mx.array(np.array(c["input"], dtype=np.uint32).view(np.float32).reshape(r, cols))
        else:
            h = mx.array(np.array(c["input"], dtype=np.uint16).reshape(r, cols))
            arr = h.view(mx.bfloat16 if c["dtype"] == "bf16" else mx.float16)
        for q in c["quant"]:
            if q["metal"]:
                continue
            wq, s, b = mx.quantize(arr, group_size=c["group_size"], bits=q["bits"])
            wq = np.array(wq).astype(np.uint32).reshape(-1).tolist()
            if c["dtype"] == "f32":
                sb = np.array(s).view(np.uint32).reshape(-1).tolist()
                bb = np.array(b).view(np.uint32).reshape(-1).tolist()
            else:
                sb = np.array(s.view(mx.uint16)).reshape(-1).tolist()
                bb = np.array(b.view(mx.uint16)).reshape(-1).tolist()
            bad = []
            for gi, label in enumerate(c["labels"]):
                wpg = c["group_size"] * q["bits"] // 32
                same = (wq[gi * wpg:(gi + 1) * wpg] == q["packed"][gi * wpg:(gi + 1) * wpg]
                        and sb[gi] == q["scales"][gi] and bb[gi] == q["biases"][gi])
                if not same:
                    bad.append({"group": label, "mlx_scale": sb[gi], "mlx_bias": bb[gi],
                                "ours_scale": q["scales"][gi], "ours_bias": q["biases"][gi]})
            report["results"].append({"dtype": c["dtype"], "group_size": c["group_size"],
                                      "bits": q["bits"], "mismatched_groups": bad})
    json.dump(report, open(out_path, "w"), indent=1)
    n_bad = sum(len(x["mismatched_groups"]) for x in report["results"])
    print("mlx", report["mlx_version"], "mismatched groups:", n_bad)


def check_torch(cases, out_path):
    """Re-run the CPU encoder vectorised in torch float32 (real float32
    hardware arithmetic, torch.round = half to even) and torch's own
    bf16/f16 casts, as an independent check of this script's struct-based
    float32 emulation."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        json.dump({"torch_available": False, "error": repr(e)}, open(out_path, "w"), indent=1)
        print("torch not importable:", e)
        return
    report = {"torch_available": True, "torch_version": torch.__version__, "results": []}
    for c in cases:
        g, r, cols = c["group_size"], c["rows"], c["cols"]
        if c["dtype"] == "f32":
            w = torch.tensor(c["input"], dtype=torch.int64).to(torch.int32).view(torch.float32)
        else:
            h = torch.tensor(c["input"], dtype=torch.int32).to(torch.int16)
            w = h.view(torch.bfloat16 if c["dtype"] == "bf16" else torch.float16).to(torch.float32)
        w = w.reshape(-1, g)
        for q in c["quant"]:
            if q["metal"]:
                continue
            bits = q["bits"]
            n = torch.tensor(float((1 << bits) - 1), dtype=torch.float32)
            eps = torch.tensor(1e-7, dtype=torch.float32)
            nan = torch.isnan(w)
            wmax = torch.where(nan, torch.tensor(-INF), w).amax(dim=1)
            wmin = torch.where(nan, torch.tensor(INF), w).amin(dim=1)
            scale = (wmax - wmin) / n
            scale = torch.where(scale < eps, eps, scale)
            mask = wmin.abs() > wmax.abs()
            scale = torch.where(mask, scale, -scale)
            edge = torch.where(mask, wmin, wmax)
            q0 = torch.round(edge / scale)
            nz = q0 != 0
            scale = torch.where(nz, edge / q0, scale)
            bias = torch.where(nz, edge, torch.zeros_like(edge))
            v = torch.round((w - bias[:, None]) / scale[:, None])
            v = torch.where(v < 0, torch.zeros_like(v), v)
            v = torch.where(n < v, n, v)
            v = torch.where(torch.isnan(v), torch.zeros_like(v), v)
            codes = v.to(torch.int64).tolist()
            if c["dtype"] == "f32":
                sb = scale.view(torch.int32).tolist()
                bb = bias.view(torch.int32).tolist()
                sb = [x & 0xFFFFFFFF for x in sb]
                bb = [x & 0xFFFFFFFF for x in bb]
                canon = 0x7FC00000
            else:
                dt = torch.bfloat16 if c["dtype"] == "bf16" else torch.float16
                sb = [x & 0xFFFF for x in scale.to(dt).view(torch.int16).tolist()]
                bb = [x & 0xFFFF for x in bias.to(dt).view(torch.int16).tolist()]
                canon = 0x7FC0 if c["dtype"] == "bf16" else 0x7E00
            sn, bn = torch.isnan(scale).tolist(), torch.isnan(bias).tolist()
            bad = []
            wpg = g * bits // 32
            for gi, label in enumerate(c["labels"]):
                s_t = canon if sn[gi] else sb[gi]
                b_t = canon if bn[gi] else bb[gi]
                same = (pack(codes[gi], bits) == q["packed"][gi * wpg:(gi + 1) * wpg]
                        and s_t == q["scales"][gi] and b_t == q["biases"][gi])
                if not same:
                    bad.append({"group": label, "torch_scale": s_t, "torch_bias": b_t,
                                "ours_scale": q["scales"][gi], "ours_bias": q["biases"][gi]})
            report["results"].append({"dtype": c["dtype"], "group_size": g, "bits": bits,
                                      "groups": len(c["labels"]), "mismatched_groups": bad})
    json.dump(report, open(out_path, "w"), indent=1)
    n_bad = sum(len(x["mismatched_groups"]) for x in report["results"])
    n_all = sum(x["groups"] for x in report["results"])
    print("torch", report["torch_version"], "groups checked:", n_all, "mismatched:", n_bad)


def main():
    cases = build()
    if len(sys.argv) >= 3 and sys.argv[1] == "--check":
        out = sys.argv[2]
        check_mlx(cases, os.path.join(out, "mlx_check.json"))
        check_torch(cases, os.path.join(out, "torch_check.json"))
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "testdata", "quant", "golden.json.gz")
    doc = {
        "generator": GENERATOR,
        "reference": MLX_REF,
        "note": "input/scales/biases are raw bits of the dtype (f32: uint32, bf16/f16: uint16); "
                "packed are uint32 words; "
                "metal entries use the Metal kernel's encoder, null where not reproduced",
        "cases": cases,
    }
    data = (json.dumps(doc, separators=(",", ":")) + "\n").encode()
    tmp = path + ".tmp"
    with open(tmp, "wb") as raw:
        # fixed mtime and no file name: the output is reproducible
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as f:
            f.write(data)
    os.replace(tmp, path)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
