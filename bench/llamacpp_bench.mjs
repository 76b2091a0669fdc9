// llama.cpp (node-llama-cpp's prebuilt binaries: ggml picks its CPU variant
// at run time, e.g. libggml-cpu-zen4.so on this machine) measured the same
// way `cria bench` measures: prefill of P tokens, then greedy decode of N
// tokens, medians over R repetitions.
//   node bench/llamacpp_bench.mjs MODEL.gguf P N THREADS REPS
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [modelPath, P, N, T, R] = process.argv.slice(2);
const nPrompt = +P, nGen = +N, threads = +T, reps = +R;
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error, maxThreads: threads });
const t0 = performance.now();
const model = await llama.loadModel({ modelPath, useMmap: true, gpuLayers: 0 });
const loadS = (performance.now() - t0) / 1000;
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
// The same pseudo-random prompt as `cria bench` (ordinary ids >= 256).
const prompt = [];
let x = 12345n;
const vocab = model.tokens.vocabSize ?? 32000;
for (let i = 0; i < nPrompt; i++) {
  x = (x * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
  prompt.push(Number((x >> 33n) % BigInt(Math.max(1, Math.min(vocab, 32000) - 256))) + 256);
}
const pp = [], tg = [];
for (let r = 0; r < reps; r++) {
  const ctx = await model.createContext({ contextSize: nPrompt + nGen + 16, batchSize: Math.min(512, nPrompt),
                                          threads: { ideal: threads, min: threads }, sequences: 1 });
  const seq = ctx.getSequence();
  let t = performance.now();
  await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, nPrompt - 1));
  pp.push((nPrompt - 1) / ((performance.now() - t) / 1000));
  t = performance.now();
  let count = 0;
  for await (const _ of seq.evaluate([prompt[nPrompt - 1]], { temperature: 0 })) {
    if (++count >= nGen) break;
  }
  tg.push(count / ((performance.now() - t) / 1000));
  await ctx.dispose();
}
console.log(JSON.stringify({ engine: "llama.cpp (node-llama-cpp 3.21.1 prebuilt)", threads,
                             prefill_tok_s: median(pp), decode_tok_s: median(tg), load_s: loadS,
                             peak_rss_bytes: process.resourceUsage().maxRSS * 1024 }));
await model.dispose();
