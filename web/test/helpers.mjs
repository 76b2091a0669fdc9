// Shared by the Node and browser tests: where things are, the native
// reference output, the browser.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT = path.resolve(WEB, '..');
export const DIST = path.join(WEB, 'dist');
export const CLI = path.join(ROOT, 'build', 'bin', 'cria');

// The demo's model (scripts/build-web): the miniature, or the random test
// model while the miniature is not trained yet.
export function demoModel() {
  const index = JSON.parse(fs.readFileSync(path.join(DIST, 'models', 'index.json'), 'utf8'));
  const m = index[0];
  const file = path.join(DIST, 'models', path.basename(m.url));
  // A random-weight model has near-ties between logits that the float
  // summation order of each ISA settles differently after a few tokens; a
  // trained model does not.
  const trained = !m.name.includes('test');
  return { ...m, file, tokens: trained ? 48 : 10 };
}

// The random-weight test model (always built): a 4096-token context and an
// end-of-sequence id it never picks on purpose, for long generations.
export const TEST_MODEL = path.join(DIST, 'models', 'llama-test.cria');

export const PROMPT = 'Tell me a fortune.';

// `cria run --greedy --chat` on the native build: the text the browser must stream.
export function nativeAnswer(model, prompt, tokens, kv = 'f16') {
  const args = ['run', '-m', model, '--chat', '--greedy', '-p', prompt, '-n', String(tokens), '--quiet', '--kv', kv];
  const out = execFileSync(CLI, args, { encoding: 'utf8' });
  return out.endsWith('\n') ? out.slice(0, -1) : out; // the CLI ends with a newline
}

export function nativePrompt(model, prompt) {
  return execFileSync(CLI, ['run', '-m', model, '--chat', '-p', prompt, '--print-prompt'], { encoding: 'utf8' });
}

// A copy of the model with one byte of its FlatBuffer header changed: the
// header checksum no longer matches.
export function corruptedCopy(file) {
  const bytes = fs.readFileSync(file);
  bytes[200] ^= 0x5a;
  return bytes;
}

// A copy with one byte flipped in the middle of the tensor data: the header
// still verifies, only that tensor's checksum fails.
export function corruptedDataCopy(file) {
  const bytes = fs.readFileSync(file);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u64 = (off) => v.getUint32(off, true) + v.getUint32(off + 4, true) * 4294967296;
  bytes[u64(24) + Math.floor(u64(32) / 2)] ^= 0x08; // data_offset + data_size / 2
  return bytes;
}

export function tmpdir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// Headless Debian Chromium through playwright-core (never a downloaded
// browser), with a new empty profile; the background-networking flags keep
// it from reaching out on this closed network.
export async function launchChromium() {
  const { chromium } = await import('playwright-core');
  const profile = tmpdir('cria-chromium-');
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1200, height: 800 },
  });
  return {
    context,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}
