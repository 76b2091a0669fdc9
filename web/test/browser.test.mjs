// The demo page in headless Debian Chromium (playwright-core): the threaded
// build on a cross-origin-isolated page, the single-threaded fallback
// without COOP/COEP, error handling, stopping, the offline reload.
// Run: node --test web/test/ (after scripts/build-web).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startServer } from '../serve.mjs';
import { corruptedCopy, corruptedDataCopy, demoModel, DIST, launchChromium, nativeAnswer, PROMPT, TEST_MODEL } from './helpers.mjs';

const model = demoModel();
const want = nativeAnswer(model.file, PROMPT, model.tokens);
const TIMEOUT = 60000;

async function openDemo(browser, url) {
  const page = await browser.context.newPage();
  page.logs = [];
  page.on('console', (m) => page.logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => page.logs.push(`pageerror: ${e.message}`));
  await page.goto(url + '/demo/');
  await waitModel(page);
  return page;
}

async function waitModel(page) {
  await page.waitForFunction(() => document.body.dataset.model === 'ready', null, { timeout: TIMEOUT });
}

async function answers(page) {
  return Number((await page.getAttribute('body', 'data-answers')) || 0);
}

// Starts a new chat, types a prompt with greedy settings, waits for the
// answer and returns its text.
async function ask(page, text, tokens = model.tokens) {
  await page.click('#new-chat');
  const n = await answers(page);
  await page.fill('#temperature', '0');
  await page.fill('#max-tokens', String(tokens));
  await page.fill('#input', text);
  await page.click('#send');
  await page.waitForFunction((k) => Number(document.body.dataset.answers || 0) > k, n, { timeout: TIMEOUT });
  return page.locator('#messages li.assistant .text').last().textContent();
}

async function errorText(page) {
  await page.waitForSelector('#error:not([hidden])', { timeout: TIMEOUT });
  return page.textContent('#error');
}

for (const isolation of [true, false]) {
  describe(`browser demo, ${isolation ? 'cross-origin isolated (threads)' : 'no COOP/COEP (single-threaded fallback)'}`, () => {
    let server, browser, page;
    before(async () => {
      server = await startServer({ port: 0, isolation });
      browser = await launchChromium();
      page = await openDemo(browser, server.url);
    });
    after(async () => {
      if (page) page.logs.length && process.env.CRIA_TEST_VERBOSE && console.log(page.logs.join('\n'));
      await browser.close();
      await server.close();
    });

    test('the bundled model loads in the expected build', async () => {
      assert.equal(await page.evaluate(() => crossOriginIsolated), isolation);
      const badge = await page.textContent('#runtime');
      assert.match(badge, isolation ? /multi-threaded/ : /single-threaded/);
      assert.match(await page.textContent('#model-status'), new RegExp(`${model.name}\\.cria: llama.*${isolation ? '[2-8] threads' : '1 thread'}`));
    });

    test('the streamed greedy answer equals `cria run --greedy --chat`', async () => {
      assert.equal(await ask(page, PROMPT), want);
      const stats = await page.textContent('#stats');
      assert.match(stats, /\d+ tokens · [\d.]+ tok\/s · first token [\d.]+ s/);
      if (isolation && process.env.CRIA_SCREENSHOT) await page.screenshot({ path: process.env.CRIA_SCREENSHOT });
    });

    test('text stays text: markup in a prompt is not rendered', async () => {
      await ask(page, '<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b>', 4);
      const user = page.locator('#messages li.user .text').last();
      assert.equal(await user.textContent(), '<img src=x onerror="document.body.dataset.pwned=1"><b>bold</b>');
      assert.equal(await page.locator('#messages img, #messages b').count(), 0);
      assert.equal(await page.getAttribute('body', 'data-pwned'), null);
      // The assistant's text is one text node, whatever it says.
      assert.equal(await page.locator('#messages li.assistant .text *').count(), 0);
    });

    test('Stop ends an answer and the next one is right', async () => {
      // Send and Stop in one go, so the click always lands before the answer
      // ends (the library tests below stop a generation mid-stream).
      const n = await answers(page);
      await page.fill('#max-tokens', '4000');
      await page.fill('#temperature', '0.8');
      await page.fill('#input', 'Tell me a long story.');
      await page.evaluate(() => {
        document.getElementById('send').click();
        document.getElementById('stop').click();
      });
      await page.waitForFunction((k) => Number(document.body.dataset.answers || 0) > k, n, { timeout: 5000 });
      assert.equal(await page.locator('#messages li.assistant').last().getAttribute('class'), 'assistant stopped');
      assert.match(await page.textContent('#stats'), /^stopped after/);
      assert.equal(await page.isDisabled('#stop'), true);
      assert.equal(await page.isDisabled('#send'), false);
      assert.equal(await ask(page, PROMPT), want);
    });

    test('AbortSignal stops a running generation inside the worker', async () => {
      // Through the library on the page: 3 pieces, abort, then a short
      // request must not wait behind thousands of tokens.
      const r = await page.evaluate(async (file) => {
        const { Cria } = await import('/dist/cria.mjs');
        const llm = await Cria.load(file);
        const ctl = new AbortController();
        let n = 0;
        let name = '';
        try {
          for await (const _ of llm.stream({ prompt: 'Once upon a time', max_new_tokens: 4000, eos_ids: [-1] }, { signal: ctl.signal }))
            if (++n === 3) ctl.abort();
        } catch (e) {
          name = e.name;
        }
        const t0 = performance.now();
        await llm.generate({ prompt: 'Hi', max_new_tokens: 1 });
        const waited = performance.now() - t0;
        const res = { name, waited, running: llm.cancelWhileRunning, variant: llm.variant };
        llm.dispose();
        return res;
      }, '/dist/models/' + path.basename(TEST_MODEL));
      assert.equal(r.name, 'AbortError');
      assert.equal(r.variant, isolation ? 'mt' : 'st');
      assert.equal(r.running, true); // threads: shared flag; single-threaded: JSPI
      assert.ok(r.waited < 5000, `the next request waited ${r.waited} ms`);
    });

    test('a bad model URL shows an error and leaves the page usable', async () => {
      await page.fill('#model-url', server.url + '/dist/models/no-such-model.cria');
      await page.click('#load-url');
      assert.match(await errorText(page), /Could not load no-such-model\.cria: .*HTTP 404/);
      assert.equal(await page.isDisabled('#load-url'), false);
      assert.equal(await ask(page, PROMPT), want); // the loaded model still answers
    });

    test('a corrupted model file shows an error and leaves the page usable', async () => {
      await page.setInputFiles('#model-file', {
        name: 'broken.cria',
        mimeType: 'application/octet-stream',
        buffer: corruptedCopy(model.file),
      });
      assert.match(await errorText(page), /Could not load broken\.cria: .*(checksum|corrupt)/i);
      assert.equal(await ask(page, PROMPT), want);
      // And a good file from the picker loads.
      const loads = Number(await page.getAttribute('body', 'data-loads'));
      await page.setInputFiles('#model-file', model.file);
      await page.waitForFunction((k) => Number(document.body.dataset.loads) > k, loads, { timeout: TIMEOUT });
      assert.equal(await page.isHidden('#error'), true);
      assert.equal(await ask(page, PROMPT), want);
    });

    test('a download with a corrupted tensor is refused, naming it, and never cached', async () => {
      const bad = path.join(DIST, 'models', `flipped-${process.pid}.cria`);
      fs.writeFileSync(bad, corruptedDataCopy(model.file));
      const url = `${server.url}/dist/models/${path.basename(bad)}`;
      try {
        await page.fill('#model-url', url);
        await page.click('#load-url');
        assert.match(await errorText(page), /Could not load flipped-\d+\.cria: .*checksum mismatch in tensor \S+/);
        const cached = await page.evaluate(async (u) => {
          const names = await caches.keys();
          for (const n of names) if (await (await caches.open(n)).match(u)) return n;
          return null;
        }, url);
        assert.equal(cached, null);
      } finally {
        fs.rmSync(bad);
      }
      assert.equal(await ask(page, PROMPT), want);
    });

    test('a model too large for wasm32 is refused before it downloads', async () => {
      const huge = path.join(DIST, 'models', `huge-test-${process.pid}.cria`);
      fs.writeFileSync(huge, fs.readFileSync(model.file).subarray(0, 4096));
      fs.truncateSync(huge, 5 * 1024 ** 3); // sparse
      try {
        await page.fill('#model-url', `${server.url}/dist/models/${path.basename(huge)}`);
        const t0 = Date.now();
        await page.click('#load-url');
        // Isolated, the page would split it across instances, but the file is
        // smaller than its size on the server: refused before any range is fetched.
        assert.match(await errorText(page), isolation
          ? /is 5\.00 GiB, but its preamble says \d+ bytes: the file is damaged/
          : /is 5\.00 GiB, more than the browser build can hold.*4 GiB/);
        assert.ok(Date.now() - t0 < 20000);
      } finally {
        fs.rmSync(huge);
      }
      assert.equal(await ask(page, PROMPT), want);
    });

    if (isolation) {
      test('a reload works offline (model from Cache Storage, page from the service worker)', async () => {
        // The bundled model was loaded by URL when the page opened, so it is
        // cached; reload once under the service worker, then cut the network.
        await page.evaluate(() => navigator.serviceWorker.ready);
        const cached = await page.evaluate(async () => (await caches.keys()).sort());
        assert.deepEqual(cached, ['cria-models', 'cria-static-v1']);
        await page.reload(); // the service worker now controls the page and has seen every file
        await waitModel(page);
        await browser.context.setOffline(true);
        try {
          await page.reload();
          await waitModel(page);
          assert.match(await page.textContent('#model-status'), /loaded in/);
          assert.equal(await ask(page, PROMPT), want);
        } finally {
          await browser.context.setOffline(false);
        }
      });
    }
  });
}

// A model split by layers across WebAssembly instances, on a
// cross-origin-isolated page (the split shares SharedArrayBuffer).
describe('browser: a model split across instances', () => {
  let server, browser, page;
  before(async () => {
    server = await startServer({ port: 0, isolation: true });
    browser = await launchChromium();
    page = await openDemo(browser, server.url);
  });
  after(async () => {
    if (page) page.logs.length && process.env.CRIA_TEST_VERBOSE && console.log(page.logs.join('\n'));
    await browser.close();
    await server.close();
  });

  // Loads `file` split into n instances with Cache Storage `cache` and asks
  // the test prompt greedily.
  async function splitAnswer(file, n, cache) {
    return page.evaluate(async ({ file, n, cache, prompt, tokens }) => {
      const { Cria } = await import('/dist/cria.mjs');
      try {
        const llm = await Cria.load(file, { instances: n, cache });
        try {
          const text = await llm.generate({ prompt, chat: true, greedy: true, max_new_tokens: tokens });
          return { instances: llm.instances, stages: llm.stages, text };
        } finally {
          llm.dispose();
        }
      } catch (e) {
        return { error: e.message };
      }
    }, { file, n, cache, prompt: PROMPT, tokens: model.tokens });
  }

  async function cachedKeys(cache) {
    return page.evaluate(async (c) => (await (await caches.open(c)).keys()).map((k) => k.url), cache);
  }

  test('2 and 3 instances give the native greedy text, each fetching less than the file', async () => {
    const size = fs.statSync(model.file).size;
    for (const n of [2, 3]) {
      const r = await splitAnswer('/dist/models/' + path.basename(model.file), n, null);
      assert.equal(r.error, undefined);
      assert.equal(r.instances, n);
      assert.equal(r.text, want, `${n} instances`);
      for (const s of r.stages) assert.ok(s.bytes < size, `an instance received ${s.bytes} of ${size} bytes`);
    }
  });

  test('a model larger than the device reports (navigator.deviceMemory) is refused before its ranges download', async () => {
    const asked = [];
    const log = (req) => req.url.endsWith('.cria') && asked.push(req.headers.range || 'all');
    server.server.on('request', log);
    const r = await page.evaluate(async (file) => {
      const { Cria } = await import('/dist/cria.mjs');
      const real = Object.getOwnPropertyDescriptor(Navigator.prototype, 'deviceMemory');
      // A device of 1 MiB: smaller than the miniature.
      Object.defineProperty(Navigator.prototype, 'deviceMemory', { configurable: true, get: () => 1 / 1024 });
      try {
        await Cria.load(file, { instances: 2 });
        return { error: null };
      } catch (e) {
        return { error: e.message };
      } finally {
        if (real) Object.defineProperty(Navigator.prototype, 'deviceMemory', real);
        else delete Navigator.prototype.deviceMemory;
      }
    }, '/dist/models/' + path.basename(model.file));
    server.server.off('request', log);
    assert.match(r.error || '', /needs about [\d.]+ MiB of memory across 2 instances, and this device reports 0\.0009765625 GiB/);
    // Only the header was read (the plan), never an instance's ranges.
    assert.ok(asked.length >= 1);
    for (const a of asked) assert.match(a, /^bytes=0-\d+$/);
  });

  test('the ranges are cached and a reload reads them; a corrupted range is refused and not cached', async () => {
    const copy = path.join(DIST, 'models', `split-${process.pid}.cria`);
    const url = '/dist/models/' + path.basename(copy);
    fs.copyFileSync(model.file, copy);
    try {
      const first = await splitAnswer(url, 2, 'cria-split-test');
      assert.equal(first.text, want);
      const keys = await cachedKeys('cria-split-test');
      assert.ok(keys.length >= 3, keys.join(', '));
      for (const k of keys) assert.match(k, /cria-bytes=\d+-\d+$/);
      // The file on the server is now corrupted: the right answer can only
      // come from the cached ranges.
      fs.writeFileSync(copy, corruptedDataCopy(model.file));
      const again = await splitAnswer(url, 2, 'cria-split-test');
      assert.equal(again.text, want, again.error);
      // Loaded fresh (another cache), the corrupted file is refused, naming
      // the tensor, and nothing of it is cached.
      const bad = await splitAnswer(url, 2, 'cria-split-bad');
      assert.match(bad.error || '', /checksum mismatch in tensor \S+/);
      assert.deepEqual(await cachedKeys('cria-split-bad'), []);
    } finally {
      fs.rmSync(copy);
    }
  });
});
