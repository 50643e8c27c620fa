// Loads GGUF files with llama.cpp (through node-llama-cpp's prebuilt CPU
// build) and reports, per file, whether it loaded, the tokenization of a
// text, and the raw logits after evaluating a list of token ids.
// Input (stdin): JSON [{"path": ..., "text": ..., "ids": [...], "texts": [...]}, ...]
// Output (stdout): JSON [{"path", "ok", "error", "tokens", "logits", "tokenized"}, ...]
// "texts" are tokenized with special-token parsing on (as HF's encode does);
// an empty "ids" skips the evaluation.
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const jobs = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const results = [];
for (const job of jobs) {
  const r = {path: job.path, ok: false};
  try {
    const model = await llama.loadModel({modelPath: job.path});
    r.tokens = Array.from(model.tokenize(job.text ?? "", false));
    r.tokenized = (job.texts ?? []).map((t) => Array.from(model.tokenize(t, true)));
    if (!job.ids || job.ids.length === 0) {
      r.ok = true;
      await model.dispose();
      results.push(r);
      continue;
    }
    const ctx = await model.createContext({
      contextSize: 64, sequences: 1, threads: 1,
      experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
    });
    const seq = ctx.getSequence();
    const input = job.ids.map((id, i) => i === job.ids.length - 1 ? [id, {generateNext: {logits: true}}] : id);
    const out = await seq.controlledEvaluate(input);
    const logits = out[job.ids.length - 1].next.logits;
    r.logits = Array.from({length: model.tokens.length ?? logits.size}, (_, i) => logits.get(i));
    r.ok = true;
    await ctx.dispose();
    await model.dispose();
  } catch (e) {
    r.error = String(e && e.stack || e).slice(0, 500);
  }
  results.push(r);
}
process.stdout.write(JSON.stringify(results));
await llama.dispose();
