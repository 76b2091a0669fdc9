// Serve benchmark: aggregate generated tokens/s and per-stream latency (time
// to first token, inter-token p50/p99) at 1, 2, 4, 8 and 16 concurrent
// OpenAI streams against one `cria serve --parallel 16`.
//
//   node bench/serve_bench.mjs -m MODEL.cria [--tokens 64] [--streams 1,2,4,8,16] [--threads N]
//
// Every stream asks for exactly --tokens tokens (ignore_eos, so all streams
// run the same length); prompts differ per stream. The
// server is started by the script on a free port and stopped at the end.
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const model = opt("-m", opt("--model"));
if (!model) {
  console.error("usage: node bench/serve_bench.mjs -m MODEL.cria [--tokens 64] [--streams 1,2,4,8,16] [--threads N]");
  process.exit(2);
}
const tokens = Number(opt("--tokens", "64"));
const streams = opt("--streams", "1,2,4,8,16").split(",").map(Number);
const threads = opt("--threads", "0");
const ctx = opt("--ctx", "512");
const cria = process.env.CRIA_BIN || path.join(root, "build/bin/cria");
const parallel = Math.max(...streams);

function start() {
  return new Promise((resolve, reject) => {
    const proc = spawn(cria, ["serve", "-m", model, "--port", "0", "--parallel", String(parallel), "--ctx", ctx,
      "--threads", threads], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[\d.]+:\d+)/);
      if (m) resolve({ proc, url: m[1] });
    });
    proc.on("exit", (c) => reject(new Error(`cria serve exited (${c})`)));
  });
}

async function info(url) {
  const r = await fetch(`${url}/v1/completions`, {
    method: "POST", body: JSON.stringify({ prompt: "x", max_tokens: 1, logprobs: null }),
  });
  return r.ok;
}

// One stream: token arrival times (ms since the request was sent).
async function stream(url, i, bias) {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: "POST",
    body: JSON.stringify({
      prompt: `Stream ${i}: tell me about the number ${i * 7919}.`, max_tokens: tokens, temperature: 0,
      logit_bias: bias, ignore_eos: true, stream: true, stream_options: { include_usage: true },
    }),
  });
  if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  const times = [];
  let usage = null, buf = "";
  const dec = new TextDecoder();
  for await (const chunk of r.body) {
    const now = performance.now() - t0;
    buf += dec.decode(chunk, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const ev = buf.slice(0, at);
      buf = buf.slice(at + 2);
      if (!ev.startsWith("data: {")) continue;
      const j = JSON.parse(ev.slice(6));
      if (j.usage) usage = j.usage;
      for (const c of j.choices) if (c.text) times.push(now);
    }
  }
  return { times, generated: usage?.completion_tokens ?? times.length, total: performance.now() - t0 };
}

const pct = (xs, p) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

const server = await start();
try {
  await info(server.url);
  const bias = undefined;
  // Warm-up: page the weights in.
  await stream(server.url, 0, bias);
  console.log(`model ${path.basename(model)}, ${tokens} tokens per stream, server --parallel ${parallel}`);
  console.log("| streams | aggregate tok/s | per-stream tok/s | TTFT p50 (ms) | inter-token p50 (ms) | inter-token p99 (ms) |");
  console.log("|---:|---:|---:|---:|---:|---:|");
  let single = 0;
  for (const n of streams) {
    const t0 = performance.now();
    const rs = await Promise.all(Array.from({ length: n }, (_, i) => stream(server.url, i + 1, bias)));
    const wall = (performance.now() - t0) / 1000;
    const generated = rs.reduce((a, r) => a + r.generated, 0);
    const agg = generated / wall;
    if (n === streams[0]) single = agg / n;
    const ttft = rs.map((r) => r.times[0]);
    const gaps = rs.flatMap((r) => r.times.slice(1).map((t, k) => t - r.times[k]));
    console.log(`| ${n} | ${agg.toFixed(1)} (${(agg / single).toFixed(2)}x) | ${(agg / n).toFixed(1)} | ` +
      `${pct(ttft, 50).toFixed(0)} | ${pct(gaps, 50).toFixed(1)} | ${pct(gaps, 99).toFixed(1)} |`);
  }
} finally {
  server.proc.removeAllListeners("exit");
  server.proc.kill("SIGTERM");
}
