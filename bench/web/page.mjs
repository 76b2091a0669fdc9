// Runs inside the benchmark page (bench/web/bench.mjs drives it): the same
// token ids through cria and wllama, prefill then single-token decode.
import { Cria } from '/web/dist/cria.mjs';

const WLLAMA = '/bench/node_modules/@wllama/wllama/esm';

// Prompt ids like `cria bench`: ordinary (non-special) ids from a fixed LCG.
// A different seed per repetition: sessions keep the cache rows of a
// prompt prefix they saw last, which would skip the prefill.
function promptIds(n, vocab, seed = 12345) {
  const ids = [];
  let x = BigInt(seed);
  const m = BigInt(Math.max(1, Math.min(vocab, 32000) - 256));
  for (let i = 0; i < n; i++) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    ids.push(Number((x >> 33n) % m) + 256);
  }
  return ids;
}

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

window.benchCria = async ({ url, threads, prompt, gen, reps }) => {
  const t0 = performance.now();
  const llm = await Cria.load(url, { variant: threads > 1 ? 'mt' : 'st', threads, contextLength: 1024 });
  const load = (performance.now() - t0) / 1000;
  const run = async (p, n) => {
    const s = llm.stream({ prompt_ids: p, max_new_tokens: n + 1, greedy: true, eos_ids: [-1] });
    for await (const _ of s);
    return s.result;
  };
  await run(promptIds(8, llm.info.vocab_size, 999), 2); // warm-up
  const pp = [], tg = [];
  for (let r = 0; r < reps; r++) {
    const res = await run(promptIds(prompt, llm.info.vocab_size, 12345 + r), gen);
    pp.push((res.prompt_tokens - res.reused_prompt_tokens) / res.prefill_seconds);
    tg.push((res.generated_tokens - 1) / res.decode_seconds);
  }
  const out = { engine: 'cria', build: llm.variant, threads: llm.threads, load, prefill: median(pp), decode: median(tg) };
  llm.dispose();
  return out;
};

window.benchWllama = async ({ url, threads, prompt, gen, reps }) => {
  const { Wllama } = await import(`${WLLAMA}/index.js`);
  const w = new Wllama(
    { 'single-thread/wllama.wasm': `${WLLAMA}/single-thread/wllama.wasm`, 'multi-thread/wllama.wasm': `${WLLAMA}/multi-thread/wllama.wasm` },
    { suppressNativeLog: true, logger: { debug() {}, log() {}, info() {}, warn() {}, error: console.error } },
  );
  const t0 = performance.now();
  const blob = await (await fetch(url)).blob();
  await w.loadModel([blob], { n_ctx: 1024, n_batch: 512, n_threads: threads });
  const load = (performance.now() - t0) / 1000;
  const vocab = Number(w.getModelMetadata?.().hparams?.nVocab || 32000);
  await w.decode(promptIds(8, vocab, 999), {}); // warm-up
  const pp = [], tg = [];
  for (let r = 0; r < reps; r++) {
    const ids = promptIds(prompt, vocab, 12345 + r);
    await w.kvClear();
    let t = performance.now();
    await w.decode(ids, {});
    pp.push(prompt / ((performance.now() - t) / 1000));
    t = performance.now();
    for (let i = 0; i < gen; i++) await w.decode([ids[i % ids.length]], {});
    tg.push(gen / ((performance.now() - t) / 1000));
  }
  const out = { engine: 'wllama 2.4.0', build: w.isMultithread() ? 'mt' : 'st', threads, load, prefill: median(pp), decode: median(tg) };
  await w.exit();
  return out;
};

document.body.dataset.ready = '1';
