// Runs inside the benchmark page (bench/web/bench.mjs drives it): the same
// token ids through cria and wllama, prefill then single-token decode.
import { Cria } from '/web/dist/cria.mjs';

const WLLAMA = '/bench/node_modules/@wllama/wllama/esm';
// wllama 3: llama.cpp's server in one Memory64 build (its memory still capped
// at 4 GiB: bench/web/wasm_memory.py).
const WLLAMA3 = '/bench/node_modules/wllama3/esm';

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
  const out = { engine: 'cria', build: llm.instances > 1 ? `${llm.variant}, ${llm.instances} instances` : llm.variant, threads: llm.threads, load, prefill: median(pp), decode: median(tg) };
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

// wllama 3 runs llama-server's completion route, which takes the prompt only
// as text here: `prompt` common English words (about one Llama 3 token
// each), drawn from the same LCG; its own timings give the prefill and
// decode rates and the tokens it really processed (no prompt cache).
const WORDS = ('the of and to in is was for on that with as by at from his her they this which but not are had ' +
  'were one all their there been have when who will more no if out so said what up its about into than them can ' +
  'only other new some could time these two may then first any my now such like our over man me even most made ' +
  'after also did many before must through back years where much your way well down should because each just ' +
  'those people how too little state good very make world still own see men work long get here between both life').split(' ');
function promptText(n, seed) {
  return promptIds(n, WORDS.length + 256, seed).map((id) => WORDS[id - 256]).join(' ');
}
window.benchWllama3 = async ({ url, threads, prompt, gen, reps }) => {
  const { Wllama } = await import(`${WLLAMA3}/index.js`);
  // Its load resolves even when llama.cpp failed to load the model; the
  // native log's errors say why (kept to report them).
  const errors = [];
  const w = new Wllama(
    { default: `${WLLAMA3}/wasm/wllama.wasm` },
    { logger: { debug() {}, log() {}, info() {}, warn() {}, error: (...a) => errors.push(a.join(' ')) } },
  );
  const t0 = performance.now();
  const blob = await (await fetch(url)).blob();
  await w.loadModel([blob], { n_ctx: 1024, n_batch: 512, n_threads: threads, n_gpu_layers: 0, n_parallel: 1 });
  const failed = errors.find((e) => /insufficient memory|failed to load model/.test(e));
  if (failed) {
    await w.exit().catch(() => {});
    throw new Error(`wllama 3 could not load the model: ${failed.trim()}`);
  }
  const load = (performance.now() - t0) / 1000;
  // Random weights make random tokens, and llama-server fails on the invalid
  // UTF-8 of loose byte tokens (wllama reports it as a bad array length), so
  // a logit bias makes greedy pick one ordinary token (" the"): one add per
  // step, the forward pass unchanged.
  const complete = (text, n) =>
    w.createCompletion({ prompt: text, max_tokens: n, temperature: 0, ignore_eos: true, cache_prompt: false,
      logit_bias: [[279, 100]] });
  await complete(promptText(8, 999), 2); // warm-up
  const pp = [], tg = [], pn = [];
  for (let r = 0; r < reps; r++) {
    const res = await complete(promptText(prompt, 12345 + r), gen);
    const t = res.timings;
    if (!t || t.prompt_n < prompt / 2 || t.predicted_n < gen)
      throw new Error(`wllama 3 did not report the whole run: ${JSON.stringify(t)}`);
    pp.push(t.prompt_per_second);
    tg.push(t.predicted_per_second);
    pn.push(t.prompt_n);
  }
  const out = { engine: 'wllama 3.13.0 (Memory64)', build: w.isMultithread() ? 'mt' : 'st', threads, load,
    prefill: median(pp), decode: median(tg), prompt_tokens: median(pn) };
  await w.exit();
  return out;
};

document.body.dataset.ready = '1';
