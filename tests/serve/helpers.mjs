// Starting and stopping `cria serve` for the tests, and the reference output
// they compare with: `cria run` (the C API's generate, not the server's
// batcher) with the same prompt, greedy.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, "../..");
export const cria = process.env.CRIA_BIN || path.join(root, "build/bin/cria");
const work = process.env.CRIA_SERVE_WORK || path.join(root, "build/testdata/serve");

// The trained Llama miniature, converted once per build.
export function miniModel() {
  mkdirSync(work, { recursive: true });
  const out = path.join(work, "llama-mini.cria");
  if (!existsSync(out))
    execFileSync(cria, ["convert", path.join(root, "examples/models/llama-mini"), "-o", out, "--quant", "q8"], {
      stdio: "ignore",
    });
  return out;
}

// Runs `cria serve` on a free port; resolves once it listens.
export function startServer(model, args = []) {
  return new Promise((resolve, reject) => {
    const threads = args.includes("--threads") ? [] : ["--threads", "2"];
    const proc = spawn(cria, ["serve", "-m", model, "--port", "0", ...threads, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "", err = "";
    proc.stderr.on("data", (d) => (err += d));
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[\d.]+:\d+)/);
      if (m) resolve({ proc, url: m[1], stderr: () => err });
    });
    proc.on("exit", (code) => reject(new Error(`cria serve exited with ${code}: ${err}`)));
  });
}

// SIGTERM, then the exit status (it must shut down cleanly).
export function stopServer(server) {
  return new Promise((resolve) => {
    if (server.proc.exitCode !== null) return resolve(server.proc.exitCode);
    server.proc.removeAllListeners("exit");
    server.proc.on("exit", (code, signal) => resolve(code ?? signal));
    server.proc.kill("SIGTERM");
  });
}

export function rssKiB(pid) {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return Number(m[1]);
}

// Greedy text from `cria run` in the chat template (its trailing newline
// removed: the CLI adds it).
export function referenceChat(model, prompt, system, maxNew) {
  const args = ["run", "-m", model, "--chat", "-p", prompt, "--greedy", "--max-new-tokens", String(maxNew), "--quiet"];
  if (system) args.push("--system", system);
  return execFileSync(cria, args, { encoding: "utf8" }).replace(/\n$/, "");
}

export async function metrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = {};
  for (const line of text.split("\n")) {
    const [k, v] = line.split(" ");
    if (k && !k.startsWith("#")) m[k] = Number(v);
  }
  return m;
}
