#!/usr/bin/env python3
"""Reference fixtures for mlxgo, computed with HF transformers (+ peft) on CPU.

Writes, under OUT/testdata/:
  models/<variant>-f32/ and models/<variant>-bf16/   tiny random checkpoints (one per
      architecture variant), each a complete HF/mlx_lm model folder (config.json,
      generation_config.json, model.safetensors, tokenizer.json, tokenizer_config.json)
      plus reference.json + reference.safetensors (logits, greedy ids and margins).
  models/<variant>-q4/, -q8/   MLX affine-quantized copies of a few f32 checkpoints with
      logits of the dequantized weights.
  lora/{lora,dora,peft,full}/  adapter files in mlx_lm's (and PEFT's) format with loss,
      gradients and logits.

Run (needs torch, transformers, peft, safetensors, tokenizers, numpy; no network):
    python3 scripts/gen_reference.py --out /tmp/gen
Only the tokenizer part runs without torch:
    python3 scripts/gen_reference.py --out /tmp/gen --tokenizer-only
See testdata/README.md for the layout of every file.
"""

import argparse
import copy
import json
import math
import os
import platform
import re
import shutil
import sys
import time
import traceback

GENERATOR = "scripts/gen_reference.py"

# ---------------------------------------------------------------------------
# Tokenizer: 4 special tokens + 508 single characters, BPE with no merges,
# decoder Fuse, no normalizer / pre-tokenizer / post-processor, so that
# encode(text) == [ID[c] for c in text] and decode(ids) == "".join(chars).
# ---------------------------------------------------------------------------

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
UNK_ID, BOS_ID, EOS_ID, PAD_ID = 0, 1, 2, 3
VOCAB_SIZE = 512

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)


def build_chars():
    chars = ["\n", "\t"]
    chars += [chr(c) for c in range(0x20, 0x7F)]  # printable ASCII incl. space
    chars += [chr(c) for c in range(0xA1, 0x100)]  # Latin-1 supplement
    chars += [chr(c) for c in range(0x100, 0x180)]  # Latin Extended-A
    chars += [chr(c) for c in range(0x391, 0x3AA) if c != 0x3A2]  # Greek capitals
    chars += [chr(c) for c in range(0x3B1, 0x3CA)]  # Greek small
    chars += [chr(c) for c in range(0x400, 0x460)]  # Cyrillic
    need = VOCAB_SIZE - len(SPECIALS)
    extra = 0x180
    while len(chars) < need:  # Latin Extended-B
        chars.append(chr(extra))
        extra += 1
    chars = chars[:need]
    assert len(set(chars)) == len(chars) == need
    return chars


CHARS = build_chars()
VOCAB = {tok: i for i, tok in enumerate(SPECIALS)}
for _i, _c in enumerate(CHARS):
    VOCAB[_c] = len(SPECIALS) + _i
assert len(VOCAB) == VOCAB_SIZE


def encode(text):
    return [VOCAB[c] for c in text]


def decode(ids):
    inv = {v: k for k, v in VOCAB.items()}
    return "".join(inv[i] for i in ids)


def tokenizer_json():
    added = []
    for i, tok in enumerate(SPECIALS):
        added.append({
            "id": i, "content": tok, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": True,
        })
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Fuse"},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": "<unk>",
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": VOCAB,
            "merges": [],
        },
    }


def tokenizer_config_json():
    return {
        "added_tokens_decoder": {
            str(i): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for i, tok in enumerate(SPECIALS)
        },
        "add_bos_token": False,
        "add_eos_token": False,
        "bos_token": "<s>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "model_max_length": 256,
        "pad_token": "<pad>",
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "<unk>",
    }


def generation_config_json():
    return {"bos_token_id": BOS_ID, "eos_token_id": EOS_ID, "pad_token_id": PAD_ID}


def write_json(path, obj, indent=2, sort_keys=True):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent, sort_keys=sort_keys, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def write_tokenizer(d):
    os.makedirs(d, exist_ok=True)
    write_json(os.path.join(d, "tokenizer.json"), tokenizer_json(), indent=None, sort_keys=False)
    write_json(os.path.join(d, "tokenizer_config.json"), tokenizer_config_json())


# Fixed inputs. Every character is in the vocabulary (checked at start).
TEXT_A = "The quick fox: 13 lazy Ωμεγα dogs; ß ŵ!\n"
TEXT_B = "Привет, мир! Ünïcödé «ok» 4"
PROMPT = "Once upon a time, "
GREEDY_STEPS = 16
LOGIT_POSITIONS = [0, 7, 8, 9, 16, 31, 38, 39]
BATCH_POSITIONS = [0, 8, 9, 25, 26]
CHAT_EXAMPLE = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi!"},
]
# LoRA batch: (text, offset); lengths are len(text) in tokens.
LORA_TEXTS = [
    ("The cat sat on the mat. A dog ran.", 0),
    ("Ωμεγα and alpha, twice.", 5),
    ("ok bye.", 0),
]

for _t in [TEXT_A, TEXT_B, PROMPT] + [t for t, _ in LORA_TEXTS]:
    for _c in _t:
        assert _c in VOCAB, repr(_c)
assert len(encode(TEXT_A)) == 40 and len(encode(TEXT_B)) == 27, (len(TEXT_A), len(TEXT_B))

# ---------------------------------------------------------------------------
# Architecture variants. Values chosen so each arch's special features act on
# the 40-token test sequence (sliding window 8, softcaps of a few units, ...).
# "rope" goes into rope_parameters (transformers 5 spelling); legacy-spelled
# configs (rope_theta/rope_scaling) are derived from the saved config.json.
# ---------------------------------------------------------------------------

BASE = dict(
    vocab_size=VOCAB_SIZE, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
    initializer_range=0.1, rms_norm_eps=1e-5, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
    pad_token_id=PAD_ID, tie_word_embeddings=False,
)


def rope(theta, **kw):
    d = {"rope_type": kw.pop("rope_type", "default"), "rope_theta": float(theta)}
    d.update(kw)
    return d


SPECS = [
    dict(name="llama", model_type="llama", kw=dict(rope_parameters=rope(10000.0)),
         ablate={"rope_theta_1e6": dict(rope_parameters=rope(1e6))},
         features="plain llama, untied lm_head, GQA 4/2"),
    dict(name="llama3", model_type="llama",
         kw=dict(tie_word_embeddings=True, rope_parameters=rope(
             500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
             original_max_position_embeddings=32)),
         ablate={"no_llama3_scaling": dict(rope_parameters=rope(500000.0))},
         features="llama3 rope scaling (original_max_position_embeddings 32), tied embeddings"),
    dict(name="mistral", model_type="mistral",
         kw=dict(rope_parameters=rope(1e6), sliding_window=None),
         features="mistral (no sliding window, as mlx_lm maps mistral to llama)"),
    dict(name="qwen2", model_type="qwen2",
         kw=dict(tie_word_embeddings=True, rope_parameters=rope(1e6), use_sliding_window=False),
         features="q/k/v bias (non-zero), tied embeddings"),
    dict(name="qwen3", model_type="qwen3", kw=dict(tie_word_embeddings=True, rope_parameters=rope(1e6)),
         features="per-head q_norm/k_norm, tied (as the small Qwen3 models)"),
    dict(name="gemma", model_type="gemma",
         kw=dict(tie_word_embeddings=True, rope_parameters=rope(10000.0),
                 hidden_activation="gelu_pytorch_tanh"),
         features="(1+w) RMSNorm, sqrt(D) embedding scale, gelu_tanh, tied"),
    dict(name="gemma2", model_type="gemma2",
         kw=dict(tie_word_embeddings=True, rope_parameters=rope(10000.0), query_pre_attn_scalar=24,
                 sliding_window=8, attn_logit_softcapping=5.0, final_logit_softcapping=3.0,
                 layer_types=["sliding_attention", "full_attention"]),
         ablate={"sliding_window_4096": dict(sliding_window=4096),
                 "no_attn_softcap": dict(attn_logit_softcapping=None),
                 "no_final_softcap": dict(final_logit_softcapping=None)},
         features="sliding window 8 on layer 0, attn softcap 5, final softcap 3, query_pre_attn_scalar 24"),
    dict(name="gemma3_text", model_type="gemma3_text",
         kw=dict(tie_word_embeddings=True, num_hidden_layers=3, query_pre_attn_scalar=24,
                 sliding_window=8,
                 layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                 rope_parameters={
                     "full_attention": rope(1e6, rope_type="linear", factor=4.0),
                     "sliding_attention": rope(10000.0)},
                 final_logit_softcapping=None, attn_logit_softcapping=None),
         extra_config={"sliding_window_pattern": 2},
         ablate={"sliding_window_4096": dict(sliding_window=4096),
                 "no_linear_scaling": dict(rope_parameters={
                     "full_attention": rope(1e6), "sliding_attention": rope(10000.0)})},
         features="q/k norm, sliding window 8 (layers 0,2), local rope 1e4, global rope 1e6 linear x4"),
    dict(name="phi3", model_type="phi3",
         kw=dict(rope_parameters=rope(10000.0, partial_rotary_factor=0.5), sliding_window=None,
                 original_max_position_embeddings=256),
         ablate={"full_rotary": dict(rope_parameters=rope(10000.0, partial_rotary_factor=1.0))},
         features="fused qkv_proj and gate_up_proj, partial_rotary_factor 0.5"),
    dict(name="mixtral", model_type="mixtral",
         kw=dict(intermediate_size=32, num_local_experts=4, num_experts_per_tok=2,
                 rope_parameters=rope(1e6), sliding_window=None, router_jitter_noise=0.0),
         features="MoE 4 experts top-2 (block_sparse_moe.experts.N.w1/w2/w3 on disk)"),
    dict(name="qwen3_moe", model_type="qwen3_moe",
         kw=dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, decoder_sparse_step=1,
                 mlp_only_layers=[], norm_topk_prob=True, rope_parameters=rope(1e6)),
         features="MoE 4 experts top-2, norm_topk_prob, q/k norm"),
    dict(name="olmo2", model_type="olmo2", kw=dict(rope_parameters=rope(500000.0), rms_norm_eps=1e-6),
         features="post-norms, q/k norm over the whole projection"),
    dict(name="starcoder2", model_type="starcoder2",
         kw=dict(tie_word_embeddings=True, use_bias=True, norm_epsilon=1e-5, sliding_window=None,
                 hidden_act="gelu_pytorch_tanh", rope_parameters=rope(100000.0)),
         features="LayerNorm with bias, biases everywhere, c_fc/c_proj MLP, tied"),
    dict(name="granite", model_type="granite",
         kw=dict(tie_word_embeddings=True, embedding_multiplier=12.0, residual_multiplier=0.25,
                 attention_multiplier=0.125, logits_scaling=2.0, rope_parameters=rope(10000.0)),
         ablate={"attention_multiplier_0.25": dict(attention_multiplier=0.25)},
         features="embedding/residual/attention multipliers, logits_scaling 2"),
    dict(name="smollm3", model_type="smollm3",
         kw=dict(tie_word_embeddings=True, no_rope_layers=[1, 0], use_sliding_window=False,
                 rope_parameters=rope(2e6)),
         ablate={"all_rope": dict(no_rope_layers=[1, 1])},
         features="NoPE on layer 1 (no_rope_layers [1, 0]), tied"),
    # Optional architectures (beyond the MVP list).
    dict(name="deepseek_v3", model_type="deepseek_v3", optional=True,
         kw=dict(num_key_value_heads=4, moe_intermediate_size=32, n_shared_experts=1, n_routed_experts=4,
                 num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1,
                 routed_scaling_factor=2.5, kv_lora_rank=32, q_lora_rank=32, qk_rope_head_dim=8,
                 qk_nope_head_dim=16, v_head_dim=16, norm_topk_prob=True, rope_interleave=True,
                 rope_parameters=rope(10000.0, rope_type="yarn", factor=4.0,
                                      original_max_position_embeddings=64, beta_fast=32.0,
                                      beta_slow=1.0, mscale=1.0, mscale_all_dim=1.0)),
         drop=["head_dim"],
         features="MLA (q/kv lora rank 32), yarn rope, 1 dense + 1 MoE layer, grouped routing"),
    dict(name="gpt_oss", model_type="gpt_oss", optional=True,
         kw=dict(intermediate_size=32, num_local_experts=4, num_experts_per_tok=2, sliding_window=8,
                 layer_types=["sliding_attention", "full_attention"],
                 rope_parameters=rope(150000.0, rope_type="yarn", factor=32.0, beta_fast=32.0,
                                      beta_slow=1.0, truncate=False,
                                      original_max_position_embeddings=4096)),
         ablate={"sliding_window_4096": dict(sliding_window=4096)},
         features="attention sinks, sliding window 8 on layer 0, yarn, MoE with biases"),
    dict(name="glm4_moe", model_type="glm4_moe", optional=True,
         kw=dict(moe_intermediate_size=32, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                 first_k_dense_replace=1, n_group=1, topk_group=1, routed_scaling_factor=1.5,
                 norm_topk_prob=True, use_qk_norm=True, attention_bias=True,
                 rope_parameters=rope(10000.0, partial_rotary_factor=0.5)),
         features="partial rotary 0.5, qk norm, attention bias, 1 dense + 1 MoE layer"),
    dict(name="qwen3_next", model_type="qwen3_next", optional=True,
         kw=dict(layer_types=["linear_attention", "full_attention"], linear_conv_kernel_dim=4,
                 linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2,
                 linear_num_value_heads=4, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                 shared_expert_intermediate_size=32, decoder_sparse_step=1, norm_topk_prob=True,
                 rope_parameters=rope(10000.0, partial_rotary_factor=0.25)),
         extra_config={"full_attention_interval": 2},
         features="gated delta-net layer 0 + gated full attention layer 1, MoE + shared expert"),
]

# Model types whose transformers-5 in-memory layout fuses experts into 3-D tensors
# (conversion_mapping.py); files are written in the hub's per-expert layout.
FUSED_EXPERT_TYPES = {"mixtral", "qwen3_moe", "deepseek_v3", "glm4_moe", "qwen3_next"}

QUANT_VARIANTS = [("llama", 4, 32), ("llama", 8, 32), ("qwen2", 4, 32)]


# ---------------------------------------------------------------------------
# Helpers needing torch (imported lazily so --tokenizer-only works without it).
# ---------------------------------------------------------------------------

def versions():
    import torch
    import transformers
    out = {"python": platform.python_version(), "torch": torch.__version__,
           "transformers": transformers.__version__}
    for mod in ["peft", "safetensors", "tokenizers", "numpy"]:
        try:
            out[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001
            out[mod] = "unavailable: %s" % e
    return out


def log(*a):
    print(*a, flush=True)


def make_config(spec, overrides=None):
    from transformers import AutoConfig
    kw = dict(BASE)
    kw.update(copy.deepcopy(spec["kw"]))
    for k in spec.get("drop", []):
        kw.pop(k, None)
    if overrides:
        kw.update(copy.deepcopy(overrides))
    return AutoConfig.for_model(spec["model_type"], **kw)


def build_model(cfg):
    import torch
    from transformers import AutoModelForCausalLM
    tries = [dict(attn_implementation="eager", experts_implementation="eager", dtype=torch.float32),
             dict(attn_implementation="eager", dtype=torch.float32)]
    err = None
    for kw in tries:
        try:
            m = AutoModelForCausalLM.from_config(copy.deepcopy(cfg), **kw)
            return m.float().eval()
        except Exception as e:  # noqa: BLE001 (older/newer transformers reject a kwarg)
            err = e
    raise err


def load_pretrained(d):
    import torch
    from transformers import AutoModelForCausalLM
    try:
        return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager",
                                                    experts_implementation="eager").eval()
    except Exception:  # noqa: BLE001
        return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()


WEIGHT_STD = 0.1
EMBED_STDS = [0.1, 0.05, 0.025, 0.01]
SEEDS_PER_STD = 6
MIN_MARGIN_WANTED = 0.01
MIN_DISTINCT_WANTED = 6


def randomize(model, seed, embed_std=WEIGHT_STD):
    """Weights ~ N(0, 0.1) (token embeddings N(0, embed_std)); every 1-D parameter (norm
    weights, biases, sinks, ...) gets U(-0.25, 0.25) added to its init (so norms are
    0.75..1.25, or -0.25..0.25 for Gemma's (1+w))."""
    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                std = embed_std if "embed_tokens" in name else WEIGHT_STD
                p.copy_(torch.randn(p.shape, generator=g) * std)
            else:
                p.add_((torch.rand(p.shape, generator=g) - 0.5) * 0.5)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.add_((torch.rand(b.shape, generator=g) - 0.5) * 0.2)


def logits_of(model, ids, attention_mask=None):
    import torch
    with torch.no_grad():
        kw = {"input_ids": ids, "use_cache": False}
        if attention_mask is not None:
            kw["attention_mask"] = attention_mask
        return model(**kw).logits.float()


def greedy(model, prompt_ids, steps):
    import torch
    ids = list(prompt_ids)
    out, margins, top1 = [], [], []
    for _ in range(steps):
        lg = logits_of(model, torch.tensor([ids]))[0, -1]
        v, i = torch.topk(lg, 2)
        out.append(int(i[0]))
        margins.append(float(v[0] - v[1]))
        top1.append(float(v[0]))
        ids.append(int(i[0]))
    return out, margins, top1


def greedy_cached(model, prompt_ids, steps):
    import torch
    with torch.no_grad():
        o = model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        past = o.past_key_values
        nxt = int(o.logits[0, -1].argmax())
        out = [nxt]
        for _ in range(steps - 1):
            o = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = o.past_key_values
            nxt = int(o.logits[0, -1].argmax())
            out.append(nxt)
    return out


def max_abs(a, b):
    return float((a.double() - b.double()).abs().max())


def rel_err(a, b):
    a = a.double()
    b = b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def to_legacy(cfg):
    """transformers-5 config dict -> older spelling: rope_theta / rope_scaling /
    partial_rotary_factor / rope_local_base_freq at top level, torch_dtype for dtype."""
    rp = cfg.pop("rope_parameters", None)
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    if rp is None:
        return cfg

    def flat(d):
        d = dict(d)
        theta = d.pop("rope_theta", None)
        prf = d.pop("partial_rotary_factor", None)
        scaling = None
        if d.get("rope_type", "default") != "default" or len([k for k in d if k != "rope_type"]) > 0:
            scaling = d
        return theta, prf, scaling

    if isinstance(rp, dict) and rp and all(isinstance(v, dict) for v in rp.values()):
        full = rp.get("full_attention") or next(iter(rp.values()))
        theta, prf, scaling = flat(full)
        if "sliding_attention" in rp:
            cfg["rope_local_base_freq"] = rp["sliding_attention"].get("rope_theta")
    else:
        theta, prf, scaling = flat(rp)
    if theta is not None:
        cfg["rope_theta"] = theta
    if prf is not None and prf != 1.0:
        cfg["partial_rotary_factor"] = prf
    cfg["rope_scaling"] = scaling
    return cfg


def hub_layout(sd, model_type, hidden):
    """Split transformers-5 fused expert tensors into the hub's per-expert names."""
    out = {}
    changed = False
    for k, v in sd.items():
        m = re.match(r"^(.*)\.mlp\.experts\.(gate_up_proj|down_proj)(\.weight)?$", k)
        if m is None or model_type not in FUSED_EXPERT_TYPES or v.ndim != 3:
            if model_type == "mixtral" and ".mlp.gate." in k:
                out[k.replace(".mlp.gate.", ".block_sparse_moe.gate.")] = v
                changed = True
            else:
                out[k] = v
            continue
        prefix, kind = m.group(1), m.group(2)
        E = v.shape[0]
        changed = True
        for e in range(E):
            if kind == "gate_up_proj":
                if v.shape[2] != hidden:
                    raise ValueError("unexpected gate_up_proj shape %s for %s" % (tuple(v.shape), k))
                inter = v.shape[1] // 2
                gate, up = v[e, :inter, :], v[e, inter:, :]
                if model_type == "mixtral":
                    out["%s.block_sparse_moe.experts.%d.w1.weight" % (prefix, e)] = gate.contiguous()
                    out["%s.block_sparse_moe.experts.%d.w3.weight" % (prefix, e)] = up.contiguous()
                else:
                    out["%s.mlp.experts.%d.gate_proj.weight" % (prefix, e)] = gate.contiguous()
                    out["%s.mlp.experts.%d.up_proj.weight" % (prefix, e)] = up.contiguous()
            else:
                if v.shape[1] != hidden:
                    raise ValueError("unexpected down_proj shape %s for %s" % (tuple(v.shape), k))
                if model_type == "mixtral":
                    out["%s.block_sparse_moe.experts.%d.w2.weight" % (prefix, e)] = v[e].contiguous()
                else:
                    out["%s.mlp.experts.%d.down_proj.weight" % (prefix, e)] = v[e].contiguous()
    return out, changed


def tensor_index(path):
    from safetensors import safe_open
    idx = {}
    with safe_open(path, framework="pt") as f:
        for k in sorted(f.keys()):
            sl = f.get_slice(k)
            idx[k] = {"dtype": sl.get_dtype(), "shape": list(sl.get_shape())}
    return idx


def save_st(tensors, path, meta):
    from safetensors.torch import save_file
    tmp = path + ".tmp"
    save_file({k: v.contiguous() for k, v in tensors.items()}, tmp,
              metadata={k: str(v) for k, v in meta.items()})
    os.replace(tmp, path)


def check_tokenizer(d):
    """Check the 1:1 mapping with the tokenizers library (what tokenizer.json means) and
    record what transformers' AutoTokenizer makes of the folder. Never raises."""
    res = {}
    try:
        from tokenizers import Tokenizer
        t = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        for text in [TEXT_A, TEXT_B, PROMPT]:
            ids = t.encode(text).ids
            if ids != encode(text):
                raise AssertionError("ids %s for %r" % (ids, text))
            if t.decode(ids) != text:
                raise AssertionError("decode %r for %r" % (t.decode(ids), text))
        res["tokenizers_lib_ok"] = True
    except Exception as e:  # noqa: BLE001
        res["tokenizers_lib_ok"] = False
        res["tokenizers_lib_error"] = "%s: %s" % (type(e).__name__, e)
    try:
        res["auto_tokenizer"] = dict(_check_tokenizer(d), ok=True)
    except Exception as e:  # noqa: BLE001
        res["auto_tokenizer"] = {"ok": False, "error": ("%s: %s" % (type(e).__name__, e))[:300]}
        try:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(d)
            res["auto_tokenizer"]["class"] = type(tok).__name__
            res["auto_tokenizer"]["pre_tokenizer"] = repr(tok.backend_tokenizer.pre_tokenizer)[:200]
        except Exception:  # noqa: BLE001
            pass
    res["ok"] = res["tokenizers_lib_ok"]
    return res


def _check_tokenizer(d):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(d)
    res = {"class": type(tok).__name__}
    for text in [TEXT_A, TEXT_B, PROMPT]:
        ids = tok(text, add_special_tokens=True)["input_ids"]
        if ids != encode(text):
            raise AssertionError("tokenizer mismatch for %r: %s vs %s" % (text, ids, encode(text)))
        if tok.decode(ids) != text:
            raise AssertionError("decode mismatch for %r: %r" % (text, tok.decode(ids)))
    rendered = tok.apply_chat_template(CHAT_EXAMPLE, tokenize=False, add_generation_prompt=True)
    res["chat_example"] = {"messages": CHAT_EXAMPLE, "add_generation_prompt": True,
                           "text": rendered, "ids": encode(rendered)}
    res["eos_token_id"] = tok.eos_token_id
    res["bos_token_id"] = tok.bos_token_id
    res["pad_token_id"] = tok.pad_token_id
    return res


# ---------------------------------------------------------------------------
# Model fixtures
# ---------------------------------------------------------------------------

def reference_record(ref, meta_common):
    """Logits, batch logits and greedy continuation of an f32 reference model."""
    import torch
    ids_a = encode(TEXT_A)
    ids_b = encode(TEXT_B)
    T = len(ids_a)
    full = logits_of(ref, torch.tensor([ids_a]))[0]  # [L, V]
    batch_ids = torch.tensor([ids_a, ids_b + [PAD_ID] * (T - len(ids_b))])
    mask = torch.tensor([[1] * T, [1] * len(ids_b) + [0] * (T - len(ids_b))])
    checks = {}
    try:
        blog = logits_of(ref, batch_ids, mask)
        checks["batch_attention_mask"] = True
    except Exception as e:  # noqa: BLE001
        checks["batch_attention_mask"] = "failed (%s); computed without mask" % e
        blog = logits_of(ref, batch_ids)
    single_b = logits_of(ref, torch.tensor([ids_b]))[0]
    checks["batch_row0_vs_single_max_abs"] = max_abs(blog[0], full)
    checks["batch_row1_vs_single_max_abs"] = max_abs(blog[1, :len(ids_b)], single_b)
    try:
        ref64 = copy.deepcopy(ref).double()
        with torch.no_grad():
            l64 = ref64(input_ids=torch.tensor([ids_a]), use_cache=False).logits[0]
        checks["f32_vs_f64_rel_err"] = rel_err(full, l64)
        checks["f32_vs_f64_max_abs"] = max_abs(full, l64)
    except Exception as e:  # noqa: BLE001
        checks["f32_vs_f64_rel_err"] = "failed: %s" % e
    gids, margins, top1 = greedy(ref, encode(PROMPT), GREEDY_STEPS)
    try:
        cached = greedy_cached(ref, encode(PROMPT), GREEDY_STEPS)
        checks["hf_cached_greedy_equal"] = cached == gids
    except Exception as e:  # noqa: BLE001
        checks["hf_cached_greedy_equal"] = "failed: %s" % e
    tensors = {
        "logits": full[LOGIT_POSITIONS].contiguous(),
        "batch_logits": blog[:, BATCH_POSITIONS].contiguous(),
    }
    rec = {
        "text": TEXT_A, "input_ids": ids_a,
        "logits_positions": LOGIT_POSITIONS,
        "batch": {"texts": [TEXT_A, TEXT_B], "input_ids": batch_ids.tolist(),
                  "attention_mask": mask.tolist(), "lengths": [T, len(ids_b)], "padding": "right",
                  "pad_token_id": PAD_ID, "positions": BATCH_POSITIONS},
        "greedy": {"prompt": PROMPT, "prompt_ids": encode(PROMPT), "steps": GREEDY_STEPS,
                   "ids": gids, "text": decode(gids), "margins": margins, "top1_logits": top1,
                   "min_margin": min(margins), "eos_token_id": EOS_ID, "hits_eos": EOS_ID in gids,
                   "method": "argmax of a full forward (no cache) at each step"},
        "checks": checks,
    }
    rec.update(meta_common)
    return rec, tensors, full


def round_bf16(model):
    """Copy of an f32 model whose stored (state_dict) tensors are rounded to bf16."""
    import torch
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for _, v in ref.state_dict().items():
            if v.is_floating_point():
                v.copy_(v.to(torch.bfloat16).float())
    return ref


def choose_init(spec):
    """Random init whose greedy continuations (f32 and bf16-rounded) are not degenerate
    (>= MIN_DISTINCT_WANTED distinct tokens, no special token, so the CLI does not stop
    at EOS) and whose top-1/top-2 margins are all >= MIN_MARGIN_WANTED; tries seeds, then smaller token-embedding std (tied embeddings
    with a large embedding scale make a model repeat its input token)."""
    import torch
    base_seed = 1000 + sum(ord(c) for c in spec["name"])
    cfg = make_config(spec)
    best = None
    attempts = 0
    for embed_std in EMBED_STDS:
        for k in range(SEEDS_PER_STD):
            seed = base_seed + 17 * k
            attempts += 1
            torch.manual_seed(seed)
            model = build_model(cfg)
            randomize(model, seed, embed_std)
            stats = []
            for m in (model, round_bf16(model)):
                ids, margins, _ = greedy(m, encode(PROMPT), GREEDY_STEPS)
                stats.append((len(set(ids)), min(margins), any(i < len(SPECIALS) for i in ids)))
            distinct = min(x[0] for x in stats)
            minm = min(x[1] for x in stats)
            special = any(x[2] for x in stats)
            ok = distinct >= MIN_DISTINCT_WANTED and minm >= MIN_MARGIN_WANTED and not special
            score = (ok, min(distinct, MIN_DISTINCT_WANTED), not special, minm)
            if best is None or score > best[0]:
                best = (score, model, {"seed": seed, "embed_std": embed_std, "weight_std": WEIGHT_STD,
                                       "vector_perturbation": "U(-0.25, 0.25) added",
                                       "greedy_distinct_tokens": distinct, "greedy_min_margin": minm,
                                       "greedy_has_special_token": special,
                                       "criteria_met": ok})
            if ok:
                best[2]["attempts"] = attempts
                return cfg, best[1], best[2]
    best[2]["attempts"] = attempts
    return cfg, best[1], best[2]


def gen_model(spec, root, vers, summary):
    import torch
    name = spec["name"]
    cfg, model, init_info = choose_init(spec)
    hidden = cfg.hidden_size
    results = {}
    for dtype_name, spelling in [("f32", "legacy"), ("bf16", "rope_parameters")]:
        d = os.path.join(root, "models", "%s-%s" % (name, dtype_name))
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        m = copy.deepcopy(model)
        if dtype_name == "bf16":
            m = m.to(torch.bfloat16)
        m.save_pretrained(d)
        for f in os.listdir(d):
            if f.endswith(".safetensors") and f != "model.safetensors":
                raise RuntimeError("unexpected weight file %s (sharded?)" % f)
        # Hub layout for fused experts, plain "pt" metadata.
        from safetensors.torch import load_file
        wpath = os.path.join(d, "model.safetensors")
        sd = load_file(wpath)
        sd2, changed = hub_layout(sd, spec["model_type"], hidden)
        if changed:
            save_st(sd2, wpath, {"format": "pt"})
        # Config: extra keys, spelling.
        cpath = os.path.join(d, "config.json")
        with open(cpath) as f:
            cj = json.load(f)
        cj.update(spec.get("extra_config", {}))
        cj.pop("_name_or_path", None)
        if spelling == "legacy":
            cj = to_legacy(cj)
        write_json(cpath, cj)
        write_json(os.path.join(d, "generation_config.json"), generation_config_json())
        write_tokenizer(d)
        # Reference model: the in-memory model with weights rounded to the stored dtype.
        ref = round_bf16(model) if dtype_name == "bf16" else copy.deepcopy(model)
        meta = {"init": init_info, "generator": GENERATOR, "versions": vers, "variant": name,
                "model_type": spec["model_type"], "dtype": {"f32": "float32", "bf16": "bfloat16"}[dtype_name],
                "config_spelling": spelling, "features": spec.get("features", ""),
                "reference": "HF transformers eager attention, float32 on CPU"
                             + (" from the bf16 weights upcast" if dtype_name == "bf16" else "")}
        rec, tensors, full = reference_record(ref, meta)
        rec["checks"]["experts_implementation"] = getattr(ref.config, "_experts_implementation", None)
        # Reload from disk through transformers (checks files + config spelling).
        try:
            re_m = load_pretrained(d)
            rec["checks"]["reload_max_abs"] = max_abs(logits_of(re_m, torch.tensor([encode(TEXT_A)]))[0], full)
            del re_m
        except Exception as e:  # noqa: BLE001
            rec["checks"]["reload_max_abs"] = "failed: %s" % e
        if dtype_name == "f32":
            abl = {}
            for an, ov in spec.get("ablate", {}).items():
                try:
                    m2 = build_model(make_config(spec, ov))
                    m2.load_state_dict(model.state_dict(), strict=True)
                    abl[an] = max_abs(logits_of(m2, torch.tensor([encode(TEXT_A)]))[0], full)
                except Exception as e:  # noqa: BLE001
                    abl[an] = "failed: %s" % e
            rec["checks"]["ablations_max_abs_logit_change"] = abl
        rec["checks"]["tokenizer"] = check_tokenizer(d)
        rec["tensors"] = tensor_index(wpath)
        rec["files"] = sorted(os.listdir(d)) + ["reference.json", "reference.safetensors"]
        save_st(tensors, os.path.join(d, "reference.safetensors"),
                {"generator": GENERATOR, "torch": vers["torch"], "transformers": vers["transformers"]})
        write_json(os.path.join(d, "reference.json"), rec)
        results[dtype_name] = {"dir": os.path.relpath(d, root), "checks": rec["checks"],
                               "min_margin": rec["greedy"]["min_margin"], "init": init_info,
                               "greedy_text": rec["greedy"]["text"]}
        log("  %s-%s: min_margin %.4g checks %s" % (name, dtype_name, rec["greedy"]["min_margin"],
                                                    json.dumps({k: v for k, v in rec["checks"].items()
                                                                if k != "tokenizer"})))
    summary[name] = results
    return model


# ---------------------------------------------------------------------------
# MLX affine quantization (mlx-compat.md section 12.4, "actual encoder")
# ---------------------------------------------------------------------------

def mlx_quantize(w, bits, group):
    """w [out, in] float32 -> (packed uint32 [out, in*bits/32], scales, biases [out, in/group],
    dequantized float32 [out, in])."""
    import numpy as np
    w = w.astype(np.float32)
    out_dim, in_dim = w.shape
    g = w.reshape(out_dim, in_dim // group, group)
    n = float(2 ** bits - 1)
    mx_ = g.max(axis=2)
    mn_ = g.min(axis=2)
    s = np.maximum((mx_ - mn_) / n, np.float32(1e-7)).astype(np.float32)
    use_min = np.abs(mn_) > np.abs(mx_)
    edge = np.where(use_min, mn_, mx_).astype(np.float32)
    s = np.where(use_min, s, -s).astype(np.float32)
    q0 = np.rint(edge / s)
    nz = q0 != 0
    s = np.where(nz, edge / np.where(nz, q0, 1.0), s).astype(np.float32)
    bias = np.where(nz, edge, 0.0).astype(np.float32)
    q = np.clip(np.rint((g - bias[..., None]) / s[..., None]), 0, n).astype(np.uint64)
    deq = (s[..., None] * q.astype(np.float32) + bias[..., None]).astype(np.float32).reshape(out_dim, in_dim)
    q = q.reshape(out_dim, in_dim)
    per = 32 // bits
    assert 32 % bits == 0
    words = np.zeros((out_dim, in_dim // per), dtype=np.uint64)
    for j in range(per):
        words |= q[:, j::per] << np.uint64(j * bits)
    return words.astype(np.uint32), s, bias, deq


def gen_quantized(spec, model, bits, group, root, vers, summary):
    import numpy as np
    import torch
    from safetensors.numpy import save_file as np_save
    src = os.path.join(root, "models", "%s-f32" % spec["name"])
    d = os.path.join(root, "models", "%s-q%d" % (spec["name"], bits))
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    from safetensors.torch import load_file
    sd = load_file(os.path.join(src, "model.safetensors"))
    out = {}
    deq_sd = {}
    quantized = []
    for k, v in sd.items():
        if k.endswith(".weight") and v.ndim == 2 and "norm" not in k and v.shape[-1] % group == 0:
            p, s, b, dq = mlx_quantize(v.numpy(), bits, group)
            base = k[: -len(".weight")]
            out[k] = p
            out[base + ".scales"] = s
            out[base + ".biases"] = b
            deq_sd[k] = torch.from_numpy(dq)
            quantized.append(base)
        else:
            out[k] = v.numpy()
            deq_sd[k] = v
    tmp = os.path.join(d, "model.safetensors.tmp")
    np_save(out, tmp, metadata={"format": "mlx"})
    os.replace(tmp, os.path.join(d, "model.safetensors"))
    with open(os.path.join(src, "config.json")) as f:
        cj = json.load(f)
    q = {"group_size": group, "bits": bits, "mode": "affine"}
    cj["quantization"] = dict(q)
    cj["quantization_config"] = dict(q)
    write_json(os.path.join(d, "config.json"), cj, indent=4)
    write_json(os.path.join(d, "generation_config.json"), generation_config_json())
    write_tokenizer(d)
    ref = copy.deepcopy(model)
    own = ref.state_dict()
    with torch.no_grad():
        for k, v in deq_sd.items():
            own[k].copy_(v)
        if getattr(ref.config, "tie_word_embeddings", False):
            # the lm_head is the (quantized) embedding
            ref.lm_head.weight.copy_(own["model.embed_tokens.weight"])
    meta = {"generator": GENERATOR, "versions": vers, "variant": spec["name"], "model_type": spec["model_type"],
            "dtype": "float32 (scales/biases), weights uint32-packed", "config_spelling": "legacy",
            "quantization": {"bits": bits, "group_size": group, "mode": "affine",
                             "quantized_modules": sorted(quantized),
                             "encoder": "mlx affine, mlx-compat.md 12.4 (edge-based, rint)"},
            "reference": "HF transformers eager, float32 on CPU, weights = scales*q + biases (dequantized)",
            "features": "quantized copy of %s-f32" % spec["name"]}
    rec, tensors, full = reference_record(ref, meta)
    rec["checks"]["tokenizer"] = check_tokenizer(d)
    rec["tensors"] = tensor_index(os.path.join(d, "model.safetensors"))
    rec["files"] = sorted(os.listdir(d)) + ["reference.json", "reference.safetensors"]
    save_st(tensors, os.path.join(d, "reference.safetensors"),
            {"generator": GENERATOR, "torch": vers["torch"], "transformers": vers["transformers"]})
    write_json(os.path.join(d, "reference.json"), rec)
    summary["%s-q%d" % (spec["name"], bits)] = {"checks": rec["checks"], "min_margin": rec["greedy"]["min_margin"]}
    log("  %s-q%d: min_margin %.4g" % (spec["name"], bits, rec["greedy"]["min_margin"]))


# ---------------------------------------------------------------------------
# LoRA / DoRA / full fine-tune references (mlx_lm tuner formulas)
# ---------------------------------------------------------------------------

LORA_RANK = 4
LORA_SCALE = 2.0
LORA_KEYS = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]


def lora_batch():
    """mlx_lm iterate_batches: right-pad with 0 to 1 + 32*ceil(max/32); lengths = [[offset, len]]."""
    import torch
    seqs = [encode(t) for t, _ in LORA_TEXTS]
    maxlen = max(len(s) for s in seqs)
    width = 1 + 32 * ((maxlen + 31) // 32)
    batch = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        batch[i, : len(s)] = torch.tensor(s)
    lengths = torch.tensor([[off, len(s)] for (t, off), s in zip(LORA_TEXTS, seqs)], dtype=torch.long)
    return batch, lengths


def mlx_default_loss(model, batch, lengths, strict_end=False):
    """mlx_lm tuner/trainer.py default_loss. strict_end=True uses steps < length (drops the
    trailing pad target that mlx_lm's `steps <= length` includes)."""
    import torch
    inputs = batch[:, :-1]
    targets = batch[:, 1:]
    logits = model(input_ids=inputs, use_cache=False).logits  # causal mask only, as mlx_lm
    steps = torch.arange(1, targets.shape[1] + 1)[None, :]
    end = (steps < lengths[:, 1:]) if strict_end else (steps <= lengths[:, 1:])
    mask = (steps >= lengths[:, 0:1]) & end
    ce = torch.logsumexp(logits, dim=-1) - logits.gather(-1, targets[..., None])[..., 0]
    ntoks = mask.sum()
    loss = (ce * mask.to(ce.dtype)).sum() / ntoks
    return loss, int(ntoks)


def wrap_modules(model, factory):
    import torch.nn as nn
    wrapped = {}
    names = [n for n, _ in model.named_modules()]
    for n in names:
        m = re.match(r"^model\.layers\.(\d+)\.(.+)$", n)
        if m is None or m.group(2) not in LORA_KEYS:
            continue
        parent_name, attr = n.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        base = getattr(parent, attr)
        assert isinstance(base, nn.Linear), n
        new = factory(n, base)
        setattr(parent, attr, new)
        wrapped[n] = new
    assert len(wrapped) == 7 * model.config.num_hidden_layers, sorted(wrapped)
    return wrapped


def make_lora_classes():
    import torch
    import torch.nn as nn

    class LoRALinear(nn.Module):
        def __init__(self, base, a, b, scale):
            super().__init__()
            self.base = base
            self.lora_a = nn.Parameter(a.clone())  # [in, r]
            self.lora_b = nn.Parameter(b.clone())  # [r, out]
            self.scale = scale

        def forward(self, x):
            return self.base(x) + self.scale * ((x @ self.lora_a) @ self.lora_b)

    class DoRALinear(nn.Module):
        def __init__(self, base, a, b, m, scale):
            super().__init__()
            self.base = base
            self.lora_a = nn.Parameter(a.clone())
            self.lora_b = nn.Parameter(b.clone())
            self.m = nn.Parameter(m.clone())  # [out]
            self.scale = scale

        def forward(self, x):
            w = self.base.weight  # [out, in]
            y = x @ w.T
            z = (x @ self.lora_a) @ self.lora_b
            out = y + self.scale * z
            adapted = w + (self.scale * self.lora_b.T) @ self.lora_a.T
            denom = torch.linalg.norm(adapted, dim=1).detach()
            out = (self.m / denom) * out
            if self.base.bias is not None:
                out = out + self.base.bias
            return out

    return LoRALinear, DoRALinear


def mlx_adapter_config(fine_tune_type, num_layers):
    # mlx_lm writes vars(args) (sorted, indent 4); load_adapters reads fine_tune_type,
    # num_layers and lora_parameters only.
    return {
        "adapter_path": "adapters", "batch_size": 3, "clear_cache_threshold": 0, "config": None,
        "data": "data", "fine_tune_type": fine_tune_type, "grad_accumulation_steps": 1,
        "grad_checkpoint": False, "iters": 1, "learning_rate": 1e-05,
        "lora_parameters": {"rank": LORA_RANK, "dropout": 0.0, "scale": LORA_SCALE},
        "lr_schedule": None, "mask_prompt": False, "max_seq_length": 2048, "model": "../../models/llama-f32",
        "num_layers": num_layers, "optimizer": "adam", "optimizer_config": {"adam": {}},
        "project_name": None, "report_to": None, "resume_adapter_file": None, "save_every": 100,
        "seed": 0, "steps_per_eval": 200, "steps_per_report": 10, "test": False, "test_batches": 500,
        "train": True, "trust_remote_code": False, "val_batches": 25,
    }


def gen_lora(base_model, root, vers, summary):
    import torch
    LoRALinear, DoRALinear = make_lora_classes()
    batch, lengths = lora_batch()
    g = torch.Generator().manual_seed(7)
    nl = base_model.config.num_hidden_layers
    init = {}
    for name, mod in base_model.named_modules():
        m = re.match(r"^model\.layers\.(\d+)\.(.+)$", name)
        if m is None or m.group(2) not in LORA_KEYS:
            continue
        w = mod.weight.detach()
        out_d, in_d = w.shape
        bound = 1.0 / math.sqrt(in_d)
        a = (torch.rand((in_d, LORA_RANK), generator=g) * 2 - 1) * bound
        b = torch.randn((LORA_RANK, out_d), generator=g) * 0.1
        mag = torch.linalg.norm(w, dim=1) * (1 + (torch.rand((out_d,), generator=g) - 0.5) * 0.2)
        init[name] = (a, b, mag)
    batch_info = {"input_ids": batch.tolist(), "lengths": lengths.tolist(),
                  "texts": [t for t, _ in LORA_TEXTS],
                  "padding": "right with 0 to 1 + 32*ceil(max_len/32) (mlx_lm iterate_batches)",
                  "lengths_meaning": "[offset, length] per row, as mlx_lm passes to default_loss"}
    ids_a = torch.tensor([encode(TEXT_A)])
    base_logits = logits_of(base_model, ids_a)[0]

    for kind in ["lora", "dora"]:
        d = os.path.join(root, "lora", kind)
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        model = copy.deepcopy(base_model)
        for p in model.parameters():
            p.requires_grad_(False)
        if kind == "lora":
            wrapped = wrap_modules(model, lambda n, base: LoRALinear(base, init[n][0], init[n][1], LORA_SCALE))
        else:
            wrapped = wrap_modules(model, lambda n, base: DoRALinear(base, init[n][0], init[n][1],
                                                                      init[n][2], LORA_SCALE))
        adapters = {}
        for n, mod in wrapped.items():
            adapters[n + ".lora_a"] = mod.lora_a.detach().clone()
            adapters[n + ".lora_b"] = mod.lora_b.detach().clone()
            if kind == "dora":
                adapters[n + ".m"] = mod.m.detach().clone()
        rec = {"generator": GENERATOR, "versions": vers, "fine_tune_type": kind,
               "base_model": "testdata/models/llama-f32", "rank": LORA_RANK, "scale": LORA_SCALE,
               "targets": LORA_KEYS, "num_layers": nl, "batch": batch_info,
               "formula": ("y = base(x) + scale * (x @ lora_a) @ lora_b; lora_a [in, r], lora_b [r, out]"
                           if kind == "lora" else
                           "y = (m / stop_grad(||W + scale * lora_b^T lora_a^T||_row)) * (x W^T + scale * (x @ lora_a) @ lora_b) + bias")}
        for strict in [False, True]:
            model.zero_grad(set_to_none=True)
            loss, ntoks = mlx_default_loss(model, batch, lengths, strict_end=strict)
            loss.backward()
            grads = {}
            for n, mod in wrapped.items():
                grads[n + ".lora_a"] = mod.lora_a.grad.detach().clone()
                grads[n + ".lora_b"] = mod.lora_b.grad.detach().clone()
                if kind == "dora":
                    grads[n + ".m"] = mod.m.grad.detach().clone()
            key = "strict_mask" if strict else "mlx_mask"
            fname = "grads_strict_mask.safetensors" if strict else "grads.safetensors"
            save_st(grads, os.path.join(d, fname), {"generator": GENERATOR, "loss": float(loss)})
            # float64 cross-check of loss and gradients
            m64 = copy.deepcopy(model).double()
            m64.zero_grad(set_to_none=True)
            l64, _ = mlx_default_loss(m64, batch, lengths, strict_end=strict)
            l64.backward()
            worst = 0.0
            for n, mod in m64.named_modules():
                if n in wrapped:
                    for pn in (["lora_a", "lora_b"] + (["m"] if kind == "dora" else [])):
                        worst = max(worst, rel_err(grads[n + "." + pn], getattr(mod, pn).grad))
            rec[key] = {"loss": float(loss), "ntoks": ntoks, "loss_f64": float(l64),
                        "grads_file": fname, "grads_f32_vs_f64_max_rel_err": worst,
                        "mask": "steps >= offset and steps %s length, steps = 1..T" % ("<" if strict else "<=")}
        # Inference with the adapter (generate --adapter-path, fuse).
        with torch.no_grad():
            lg = logits_of(model, ids_a)[0]
            gids, margins, top1 = greedy(model, encode(PROMPT), GREEDY_STEPS)
            fused = copy.deepcopy(base_model)
            for n, mod in wrapped.items():
                lin = fused.get_submodule(n)
                w = lin.weight + (LORA_SCALE * mod.lora_b.T) @ mod.lora_a.T
                if kind == "dora":
                    w = (mod.m / torch.linalg.norm(w, dim=1))[:, None] * w
                lin.weight.copy_(w)
            fused_diff = max_abs(logits_of(fused, ids_a)[0], lg)
        rec["logits_positions"] = LOGIT_POSITIONS
        rec["input_ids"] = encode(TEXT_A)
        rec["greedy"] = {"prompt": PROMPT, "prompt_ids": encode(PROMPT), "ids": gids, "text": decode(gids),
                         "margins": margins, "top1_logits": top1, "min_margin": min(margins)}
        rec["checks"] = {"fused_vs_adapter_max_abs": fused_diff,
                         "adapter_vs_base_max_abs": max_abs(lg, base_logits)}
        save_st({"logits": lg[LOGIT_POSITIONS].contiguous()}, os.path.join(d, "reference.safetensors"),
                {"generator": GENERATOR})
        save_st(adapters, os.path.join(d, "adapters.safetensors"), {"format": "mlx"})
        write_json(os.path.join(d, "adapter_config.json"), mlx_adapter_config(kind, nl), indent=4)
        rec["adapters"] = tensor_index(os.path.join(d, "adapters.safetensors"))
        write_json(os.path.join(d, "reference.json"), rec)
        summary["lora/" + kind] = {k: rec[k] for k in ["mlx_mask", "strict_mask", "checks"]}
        log("  lora/%s: loss %.6f ntoks %d checks %s" % (kind, rec["mlx_mask"]["loss"], rec["mlx_mask"]["ntoks"],
                                                          rec["checks"]))
        if kind == "lora":
            lora_logits = lg
            lora_model = model

    # PEFT adapter equivalent to the mlx LoRA one: lora_A = lora_a^T, lora_B = lora_b^T,
    # lora_alpha / r = scale.
    d = os.path.join(root, "lora", "peft")
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    try:
        from peft import LoraConfig, get_peft_model
        pcfg = LoraConfig(r=LORA_RANK, lora_alpha=int(LORA_SCALE * LORA_RANK),
                          target_modules=[k.split(".")[-1] for k in LORA_KEYS], lora_dropout=0.0,
                          bias="none", task_type="CAUSAL_LM")
        pm = get_peft_model(copy.deepcopy(base_model), pcfg)
        n_set = 0
        with torch.no_grad():
            for name, mod in pm.named_modules():
                if hasattr(mod, "lora_A") and "default" in getattr(mod, "lora_A", {}):
                    path = name[len("base_model.model."):] if name.startswith("base_model.model.") else name
                    a, b, _ = init[path]
                    mod.lora_A["default"].weight.copy_(a.T)
                    mod.lora_B["default"].weight.copy_(b.T)
                    n_set += 1
        assert n_set == 7 * nl, n_set
        pm.eval()
        plg = logits_of(pm, ids_a)[0]
        pm.save_pretrained(d)
        acfg_path = os.path.join(d, "adapter_config.json")
        with open(acfg_path) as f:
            acfg = json.load(f)
        acfg["base_model_name_or_path"] = "../../models/llama-f32"
        write_json(acfg_path, acfg)
        save_st({"logits": plg[LOGIT_POSITIONS].contiguous()}, os.path.join(d, "reference.safetensors"),
                {"generator": GENERATOR})
        rec = {"generator": GENERATOR, "versions": vers, "base_model": "testdata/models/llama-f32",
               "equivalent_mlx_adapter": "testdata/lora/lora",
               "mapping": "lora_a = lora_A.weight^T, lora_b = lora_B.weight^T, scale = lora_alpha / r",
               "logits_positions": LOGIT_POSITIONS, "input_ids": encode(TEXT_A),
               "checks": {"peft_vs_mlx_formula_max_abs": max_abs(plg, lora_logits)},
               "adapter": tensor_index(os.path.join(d, "adapter_model.safetensors")),
               "files": sorted(os.listdir(d)) + ["reference.json"]}
        write_json(os.path.join(d, "reference.json"), rec)
        summary["lora/peft"] = rec["checks"]
        log("  lora/peft: %s" % rec["checks"])
    except Exception:  # noqa: BLE001
        summary["lora/peft"] = "failed: " + traceback.format_exc()
        log(summary["lora/peft"])
    del lora_model


def gen_full(root, vers, summary):
    import torch
    spec = dict(name="llama-small", model_type="llama",
                kw=dict(hidden_size=32, intermediate_size=64, head_dim=8, rope_parameters=rope(10000.0)))
    torch.manual_seed(4242)
    cfg = make_config(spec)
    model = build_model(cfg)
    randomize(model, 4242)
    d = os.path.join(root, "lora", "full")
    if os.path.exists(d):
        shutil.rmtree(d)
    md = os.path.join(d, "model")
    os.makedirs(md)
    model.save_pretrained(md)
    cpath = os.path.join(md, "config.json")
    with open(cpath) as f:
        cj = json.load(f)
    cj.pop("_name_or_path", None)
    write_json(cpath, to_legacy(cj))
    write_json(os.path.join(md, "generation_config.json"), generation_config_json())
    write_tokenizer(md)
    batch, lengths = lora_batch()
    model.train(False)
    for p in model.parameters():
        p.requires_grad_(True)
    model.zero_grad(set_to_none=True)
    loss, ntoks = mlx_default_loss(model, batch, lengths)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    m64 = copy.deepcopy(model).double()
    m64.zero_grad(set_to_none=True)
    l64, _ = mlx_default_loss(m64, batch, lengths)
    l64.backward()
    worst = max(rel_err(grads[n], p.grad) for n, p in m64.named_parameters())
    save_st(grads, os.path.join(d, "grads.safetensors"), {"generator": GENERATOR, "loss": float(loss)})
    write_json(os.path.join(d, "adapter_config.json"), mlx_adapter_config("full", cfg.num_hidden_layers), indent=4)
    rec = {"generator": GENERATOR, "versions": vers, "fine_tune_type": "full", "base_model": "testdata/lora/full/model",
           "batch": {"input_ids": batch.tolist(), "lengths": lengths.tolist()},
           "mlx_mask": {"loss": float(loss), "loss_f64": float(l64), "ntoks": ntoks,
                        "grads_file": "grads.safetensors", "grads_f32_vs_f64_max_rel_err": worst},
           "note": ("gradients of every parameter (embeddings, norms, lm_head included); mlx_lm's full "
                    "fine-tune trains only the parameters of the last num_layers blocks"),
           "grads": tensor_index(os.path.join(d, "grads.safetensors")),
           "tensors": tensor_index(os.path.join(md, "model.safetensors"))}
    write_json(os.path.join(d, "reference.json"), rec)
    summary["lora/full"] = rec["mlx_mask"]
    log("  lora/full: %s" % rec["mlx_mask"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder; fixtures go to OUT/testdata")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--skip-optional", action="store_true", help="skip deepseek_v3, gpt_oss, glm4_moe, qwen3_next")
    ap.add_argument("--skip-lora", action="store_true")
    ap.add_argument("--tokenizer-only", action="store_true", help="write OUT/testdata/tokenizer only (no torch)")
    args = ap.parse_args()
    root = os.path.join(args.out, "testdata")
    os.makedirs(root, exist_ok=True)
    if args.tokenizer_only:
        write_tokenizer(os.path.join(root, "tokenizer"))
        log("tokenizer written; TEXT_A ids:", encode(TEXT_A))
        return 0
    import torch
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    torch.use_deterministic_algorithms(True, warn_only=True)
    vers = versions()
    log("versions:", json.dumps(vers))
    only = set(x for x in args.only.split(",") if x)
    summary = {"versions": vers, "failed": {}}
    models = {}
    t0 = time.time()
    for spec in SPECS:
        if only and spec["name"] not in only:
            continue
        if spec.get("optional") and args.skip_optional:
            continue
        t = time.time()
        try:
            models[spec["name"]] = (spec, gen_model(spec, root, vers, summary))
            log("%s done in %.1fs" % (spec["name"], time.time() - t))
        except Exception:  # noqa: BLE001
            tb = traceback.format_exc()
            summary["failed"][spec["name"]] = tb
            log("FAILED %s:\n%s" % (spec["name"], tb))
            for suf in ["f32", "bf16"]:
                shutil.rmtree(os.path.join(root, "models", "%s-%s" % (spec["name"], suf)), ignore_errors=True)
    for name, bits, group in QUANT_VARIANTS:
        if name not in models:
            continue
        try:
            gen_quantized(models[name][0], models[name][1], bits, group, root, vers, summary)
        except Exception:  # noqa: BLE001
            summary["failed"]["%s-q%d" % (name, bits)] = traceback.format_exc()
            log("FAILED quant %s-q%d:\n%s" % (name, bits, traceback.format_exc()))
    if not args.skip_lora and "llama" in models:
        for fn, label in [(lambda: gen_lora(models["llama"][1], root, vers, summary), "lora"),
                          (lambda: gen_full(root, vers, summary), "full")]:
            try:
                fn()
            except Exception:  # noqa: BLE001
                summary["failed"][label] = traceback.format_exc()
                log("FAILED %s:\n%s" % (label, traceback.format_exc()))
    summary["seconds"] = time.time() - t0
    write_json(os.path.join(args.out, "summary.json"), summary)
    log("failed:", sorted(summary["failed"]))
    log("total %.1fs" % summary["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
