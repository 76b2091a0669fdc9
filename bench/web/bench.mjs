// Browser benchmark: cria (this repo's web/dist) against wllama in headless
// Debian Chromium, on the same Q4_0 weights (one GGUF file; cria imports it
// bit for bit), next to cria's native figures (`cria bench`) at the same
// thread counts. Peers (bench/package.json): wllama 2.4.0 and wllama 3.13.0
// (llama.cpp's server). Both are Memory64 builds whose wasm declares a
// 4 GiB maximum memory all the same (bench/web/wasm_memory.py): 2.4.0's row
// says so for a model past that without trying, 3.13.0's quotes llama.cpp's
// allocation error.
//   scripts/setup --bench && scripts/build-web
//   node bench/web/bench.mjs [--models mini,1b,8b] [--engines cria,wllama,wllama3]
//                            [--prompt 64] [--gen 32] [--reps 3] [--threads 1,2]
// Models: the Llama miniature (examples/models/llama-mini, when trained), the
// Llama-3.2-1B and Llama-3-8B shapes with random weights
// (scripts/gen_checkpoint.py --full), made once under build-wasm/bench/ (the
// 8B: a 15 GiB bf16 checkpoint, then a 4.3 GiB GGUF and .cria, so cria splits
// it across two instances). Prints a Markdown table with the peak memory of
// the browser's processes (the sum of their PSS, sampled every 250 ms) and
// the machine's load at the time (a benchmark on a busy machine means little).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServer } from '../../web/serve.mjs';
import { launchChromium } from '../../web/test/helpers.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const WORK = path.join(ROOT, 'build-wasm', 'bench');
const CLI = path.join(ROOT, 'build', 'bin', 'cria');
const PY = '/usr/bin/python3';

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const P = Number(arg('prompt', 64));
const N = Number(arg('gen', 32));
const REPS = Number(arg('reps', 3));
const THREADS = arg('threads', '1,2').split(',').map(Number);
const WANT = arg('models', 'mini,1b').split(',');
const ENGINES = arg('engines', 'cria,wllama,wllama3').split(',');
const WLLAMA_MEMORY_MAX = 4 * 2 ** 30; // bench/web/wasm_memory.py

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 26, ...opts });
}

// HF dir -> Q4_0 GGUF -> .cria (the GGUF's blocks, repacked exactly).
function prepare(name, hfDir, gen) {
  fs.mkdirSync(WORK, { recursive: true });
  if (!fs.existsSync(path.join(hfDir, 'config.json'))) {
    if (!gen) return null;
    console.error(`bench: generating ${hfDir}`);
    run(PY, ['scripts/gen_checkpoint.py', ...gen, '--out', hfDir]);
  }
  const gguf = path.join(WORK, `${name}-q4_0.gguf`);
  const cria = path.join(WORK, `${name}-q4_0.cria`);
  if (!fs.existsSync(gguf)) {
    console.error(`bench: ${gguf}`);
    run(PY, ['scripts/hf_to_gguf.py', hfDir, '--out', gguf, '--type', 'q4_0']);
  }
  if (!fs.existsSync(cria) || fs.statSync(cria).mtimeMs < fs.statSync(gguf).mtimeMs) {
    console.error(`bench: ${cria}`);
    run(CLI, ['convert', gguf, '-o', cria]);
  }
  return { name, gguf, cria, size: fs.statSync(cria).size };
}

function loadSnapshot() {
  const load = fs.readFileSync('/proc/loadavg', 'utf8').trim().split(' ').slice(0, 3).join(' ');
  let top = '';
  try {
    top = run('top', ['-bn1', '-w', '160']).split('\n').slice(6, 13).join('\n');
  } catch {}
  return { load, top };
}

const models = [];
if (WANT.includes('mini')) {
  const m = prepare('llama-mini', path.join(ROOT, 'examples/models/llama-mini'), null);
  if (m) models.push(m);
  else console.error('bench: examples/models/llama-mini is not there yet; skipping the miniature');
}
if (WANT.includes('1b'))
  models.push(prepare('llama3.2-1b', path.join(WORK, 'llama3.2-1b-hf'), ['--preset', 'llama3.2-1b', '--full']));
if (WANT.includes('8b'))
  models.push(prepare('llama3-8b', path.join(WORK, 'llama3-8b-hf'), ['--preset', 'llama3-8b', '--full']));

// The browser's memory: every Chromium process's PSS (shared pages counted
// once across them), summed; the peak over a page's run.
function chromiumPssBytes() {
  let total = 0;
  for (const pid of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (!fs.readlinkSync(`/proc/${pid}/exe`).includes('chromium')) continue;
      const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      if (m) total += Number(m[1]) * 1024;
    } catch {}
  }
  return total;
}
async function withPeakMemory(fn) {
  let peak = chromiumPssBytes();
  const timer = setInterval(() => (peak = Math.max(peak, chromiumPssBytes())), 250);
  try {
    return { result: await fn(), peak };
  } finally {
    clearInterval(timer);
    peak = Math.max(peak, chromiumPssBytes());
  }
}

const before = loadSnapshot();
const rows = [];
const server = await startServer({ port: 0, isolation: true, root: ROOT });
const browser = await launchChromium();
try {
  for (const m of models) {
    for (const t of THREADS) {
      // One repetition per process: `cria bench` repeats one prompt, whose
      // prefix the session keeps after the first repetition.
      const nats = [];
      for (let r = 0; r < REPS; r++)
        nats.push(JSON.parse(run(CLI, ['bench', '-m', m.cria, '-p', String(P), '-n', String(N), '-t', String(t), '-r', '1', '--json'])));
      const med = (k) => nats.map((x) => x[k]).sort((a, b) => a - b)[Math.floor(nats.length / 2)];
      const nat = { prefill_tok_s: med('prefill_tok_s'), decode_tok_s: med('decode_tok_s'), load_s: med('load_s'), peak_rss_bytes: med('peak_rss_bytes') };
      rows.push({ model: m.name, engine: 'cria native (avx512/avx2)', build: 'native', threads: t, prefill: nat.prefill_tok_s, decode: nat.decode_tok_s, load: nat.load_s, mem: nat.peak_rss_bytes });
      console.error(`bench: ${m.name} native t=${t}: pp ${nat.prefill_tok_s.toFixed(2)} tg ${nat.decode_tok_s.toFixed(2)}`);
      for (const engine of ENGINES) {
        if (engine === 'wllama' && m.size > WLLAMA_MEMORY_MAX) {
          rows.push({ model: m.name, engine: 'wllama 2.4.0', build: '-', threads: t, error: 'cannot load: its memory maximum is 4 GiB' });
          continue;
        }
        const page = await browser.context.newPage();
        page.on('console', (msg) => msg.type() === 'error' && console.error(`page: ${msg.text()}`));
        await page.goto(`${server.url}/bench/web/bench.html`);
        await page.waitForFunction(() => document.body.dataset.ready === '1');
        const file = engine === 'cria' ? m.cria : m.gguf;
        const url = '/' + path.relative(ROOT, file);
        const fn = { cria: 'benchCria', wllama: 'benchWllama', wllama3: 'benchWllama3' }[engine];
        try {
          const { result: r, peak } = await withPeakMemory(() =>
            page.evaluate(([f, o]) => window[f](o), [fn, { url, threads: t, prompt: P, gen: N, reps: REPS }]));
          rows.push({ model: m.name, ...r, mem: peak });
          console.error(`bench: ${m.name} ${r.engine} ${r.build} t=${t}: pp ${r.prefill.toFixed(2)} tg ${r.decode.toFixed(2)} peak ${(peak / 2 ** 30).toFixed(2)} GiB`);
        } catch (e) {
          const label = { cria: 'cria', wllama: 'wllama 2.4.0', wllama3: 'wllama 3.13.0 (Memory64)' }[engine];
          rows.push({ model: m.name, engine: label, build: '-', threads: t, error: String(e.message || e).split('\n')[0] });
          console.error(`bench: ${m.name} ${engine} t=${t} failed: ${e.message}`);
        }
        await page.close();
      }
    }
  }
} finally {
  await browser.close();
  await server.close();
}
const afterSnap = loadSnapshot();

const chromium = run('/usr/bin/chromium', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] }).trim();
const cpu = (os.cpus()[0] || {}).model || '?';
const f = (x) => (x === undefined ? '-' : x.toFixed(2));
console.log(`\n${chromium}, ${cpu}, ${os.cpus().length} cores; prompt ${P} tokens, ${N} decoded, median of ${REPS}`);
console.log(`load average before: ${before.load}; after: ${afterSnap.load}\n`);
console.log('| model | engine | build | threads | prefill tok/s | decode tok/s | load s | peak memory GiB | vs best wllama (pp / tg) | decode vs native |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
const gib = (b) => (b ? (b / 2 ** 30).toFixed(2) : '-');
for (const r of rows) {
  const peers = rows.filter((x) => x.model === r.model && x.threads === r.threads && x.engine.startsWith('wllama') && !x.error);
  const wl = peers.sort((a, b) => b.decode - a.decode)[0];
  const nat = rows.find((x) => x.model === r.model && x.threads === r.threads && x.build === 'native');
  const vs = r.engine === 'cria' && wl && !r.error ? `${(r.prefill / wl.prefill).toFixed(2)}× / ${(r.decode / wl.decode).toFixed(2)}× (${wl.engine.split(' ').slice(0, 2).join(' ')})` : '';
  const vn = r.engine === 'cria' && nat && !r.error ? `${((100 * r.decode) / nat.decode).toFixed(0)}%` : '';
  if (r.error) console.log(`| ${r.model} | ${r.engine} | - | ${r.threads} | ${r.error} | | | | | |`);
  else console.log(`| ${r.model} | ${r.engine} | ${r.build} | ${r.threads} | ${f(r.prefill)} | ${f(r.decode)} | ${f(r.load)} | ${gib(r.mem)} | ${vs} | ${vn} |`);
}
console.log(`\nbusiest processes before the run:\n${before.top}`);
fs.writeFileSync(path.join(WORK, 'results.json'), JSON.stringify({ date: new Date().toISOString(), chromium, cpu, P, N, REPS, before, after: afterSnap, rows }, null, 2));
