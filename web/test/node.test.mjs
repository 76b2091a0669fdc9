// The JS library under Node: the same module the page uses, its workers on
// worker_threads. Run: node --test web/test/ (after scripts/build-web).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cria } from '../dist/cria.mjs';
import { startServer } from '../serve.mjs';
import { CLI, corruptedCopy, corruptedDataCopy, demoModel, nativeAnswer, nativePrompt, PROMPT, TEST_MODEL, tmpdir } from './helpers.mjs';

const model = demoModel();

// Aborts once the stream has given three pieces; the stream must then end
// with an AbortError.
async function abortAtThirdPiece(s, ctl) {
  let n = 0;
  await assert.rejects(
    (async () => {
      for await (const _ of s) if (++n === 3) ctl.abort();
    })(),
    { name: 'AbortError' },
  );
}

describe('Node: Cria.load + stream', () => {
  let mt, st;
  before(async () => {
    mt = await Cria.load(model.file, { variant: 'mt', threads: 2 });
    st = await Cria.load(model.file, { variant: 'st' });
  });
  after(() => {
    mt.dispose();
    st.dispose();
  });

  test('describes the model', () => {
    assert.equal(mt.variant, 'mt');
    assert.equal(mt.threads, 2);
    assert.equal(st.variant, 'st');
    assert.equal(st.threads, 1);
    assert.equal(mt.info.architecture, 'llama');
    assert.equal(mt.info.file_size, fs.statSync(model.file).size);
    // The KV budget uses the model's own head_dim (f16 K and V per layer and KV head).
    assert.ok(mt.info.head_dim > 0);
    assert.equal(mt.info.kv_bytes_per_token, 4 * mt.info.num_layers * mt.info.num_kv_heads * mt.info.head_dim);
    assert.ok(mt.contextLength >= 256);
  });

  test('renders the same prompt as the CLI', async () => {
    const text = await mt.renderPrompt({ prompt: PROMPT, chat: true });
    assert.equal(text, nativePrompt(model.file, PROMPT));
  });

  test('greedy answer equals `cria run --greedy --chat`, both builds', async () => {
    const want = nativeAnswer(model.file, PROMPT, model.tokens);
    for (const llm of [mt, st]) {
      const pieces = [];
      const s = llm.stream({ messages: [{ role: 'user', content: PROMPT }] }, { max_new_tokens: model.tokens, temperature: 0 });
      for await (const p of s) pieces.push(p);
      const r = await s.result;
      assert.equal(pieces.join(''), want, `${llm.variant} build`);
      assert.ok(r.generated_tokens >= 1 && r.generated_tokens <= model.tokens);
      assert.ok(r.prompt_tokens > 5);
      assert.ok(r.time_to_first_token > 0);
      assert.equal(await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens }), want);
    }
  });

  test('KV cache types: the same greedy answer as the CLI with the same --kv; bad ones refused', async () => {
    for (const kv of ['q8', 'q4']) {
      const llm = await Cria.load(model.file, { variant: 'st', kv });
      try {
        assert.equal(llm.kv, kv);
        const got = await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens });
        assert.equal(got, nativeAnswer(model.file, PROMPT, model.tokens, kv), kv);
        if (kv === 'q4') assert.notEqual(got, nativeAnswer(model.file, PROMPT, model.tokens), 'q4 must change this answer');
      } finally {
        llm.dispose();
      }
    }
    await assert.rejects(Cria.load(model.file, { variant: 'st', kv: 'q5' }), /kv must be 'f16', 'q8' or 'q4'/);
  });

  test('seeded sampling repeats', async () => {
    const req = { prompt: PROMPT, chat: true, max_new_tokens: 12, temperature: 0.9, top_k: 40, top_p: 0.95, seed: 7 };
    const a = await mt.generate(req);
    assert.equal(await mt.generate(req), a);
    assert.equal(await st.generate(req), a);
  });

  test('AbortSignal stops a running generation; the model stays usable', async () => {
    // The long-context test model, 4000 tokens asked for: without a cancel
    // inside the worker the next request would wait for all of them.
    const llm = await Cria.load(TEST_MODEL, { variant: 'mt', threads: 2 });
    const ctl = new AbortController();
    const s = llm.stream({ prompt: 'Once upon a time', max_new_tokens: 4000, greedy: true, eos_ids: [-1] }, { signal: ctl.signal });
    await abortAtThirdPiece(s, ctl);
    await assert.rejects(s.result, { name: 'AbortError' });
    const t0 = Date.now();
    await llm.generate({ prompt: PROMPT, max_new_tokens: 1 });
    assert.ok(Date.now() - t0 < 5000, `the next request waited ${Date.now() - t0} ms`);
    // Breaking out of the loop cancels too.
    for await (const _ of llm.stream({ prompt: 'Once upon a time', max_new_tokens: 4000, eos_ids: [-1] })) break;
    const t1 = Date.now();
    await llm.generate({ prompt: PROMPT, max_new_tokens: 1 });
    assert.ok(Date.now() - t1 < 5000, `the next request waited ${Date.now() - t1} ms`);
    llm.dispose();
  });

  test('a conversation longer than the context is truncated on request', async () => {
    const long = Array.from({ length: 40 }, (_, i) => `Line ${i}: tell me a fortune about the number ${i}.`).join('\n');
    await assert.rejects(mt.generate({ messages: [{ role: 'user', content: long }], max_new_tokens: 4 }), /context/);
    assert.equal(typeof (await mt.generate({ messages: [{ role: 'user', content: long }], max_new_tokens: 4, truncate: true })), 'string');
  });

  test('bad requests are errors, not crashes', async () => {
    await assert.rejects(mt.generate({}), /messages/);
    await assert.rejects(mt.generate({ prompt: PROMPT, top_p: 2 }), /top_p/);
    await assert.rejects(mt.generate({ messages: [{ role: 'user' }] }), /role/);
    assert.equal(typeof (await mt.generate({ prompt: PROMPT, max_new_tokens: 2 })), 'string');
  });
});

describe('Node: loading errors', () => {
  test('a missing file', async () => {
    await assert.rejects(Cria.load('/nonexistent/model.cria', { variant: 'st' }), /ENOENT|no such file/);
  });

  test('a corrupted file (ArrayBuffer source)', async () => {
    await assert.rejects(Cria.load(corruptedCopy(model.file), { variant: 'st', name: 'broken.cria' }), /broken\.cria.*(checksum|corrupt)/i);
  });

  test('one flipped byte in the tensor data is refused while streaming, naming the tensor', async () => {
    await assert.rejects(Cria.load(corruptedDataCopy(model.file), { variant: 'st', name: 'flipped.cria' }),
      /flipped\.cria: checksum mismatch in tensor \S+/);
  });

  test('not a model at all', async () => {
    await assert.rejects(Cria.load(new TextEncoder().encode('hello'.repeat(100)), { variant: 'st' }), /not a cria model file/);
  });

  test('a truncated file', async () => {
    const dir = tmpdir('cria-node-');
    const f = path.join(dir, 'short.cria');
    fs.writeFileSync(f, fs.readFileSync(model.file).subarray(0, 100000));
    await assert.rejects(Cria.load(f, { variant: 'st' }), /truncated/);
    fs.rmSync(dir, { recursive: true });
  });

  test('a model larger than wasm32 can hold is refused before it is read (one instance)', async () => {
    const dir = tmpdir('cria-node-');
    const f = path.join(dir, 'huge.cria');
    const head = fs.readFileSync(model.file).subarray(0, 4096);
    fs.writeFileSync(f, head);
    fs.truncateSync(f, 5 * 1024 ** 3); // sparse: 5 GiB on paper
    await assert.rejects(Cria.load(f, { variant: 'st', instances: 1 }), /5\.00 GiB.*4 GiB/);
    // Without `instances` it would be split, but the header says the file is
    // smaller than it is: refused before any range is fetched.
    await assert.rejects(Cria.load(f, { variant: 'st' }), /is 5\.00 GiB, but its preamble says \d+ bytes: the file is damaged/);
    fs.rmSync(dir, { recursive: true });
  });

  test('one instance allocates a model block of more than 2 GiB', async () => {
    // dlmalloc asks sbrk for less than 2 GiB at a time; crw_alloc grows the
    // heap in two steps (cria_web.cc). Without them this block fails on a
    // fresh heap, and a 2-4 GiB model could not load in one instance.
    const require = createRequire(import.meta.url);
    const dir = path.join(path.dirname(model.file), '..');
    const factory = require(path.join(dir, 'cria-st.js'));
    const M = await factory({
      instantiateWasm(imports, receive) {
        WebAssembly.instantiate(fs.readFileSync(path.join(dir, 'cria-st.wasm')), imports).then((r) => receive(r.instance, r.module));
        return {};
      },
      criaPiece: () => 0, criaYield: () => 0, criaHost: {},
    });
    const p = M._crw_alloc(2.5 * 1024 ** 3) >>> 0;
    assert.notEqual(p, 0);
    M._crw_free(p);
  });

  test('an ArrayBuffer loads like a file', async () => {
    const bytes = fs.readFileSync(model.file);
    const llm = await Cria.load(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), { variant: 'st' });
    assert.equal(await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens }),
      nativeAnswer(model.file, PROMPT, model.tokens));
    llm.dispose();
  });
});

// A model split by layers across several WebAssembly instances (workers),
// forced with `instances` on the miniatures (the automatic split needs a
// model larger than one wasm32 memory).
describe('Node: a model split across instances', () => {
  // The Falcon miniature is a base model (no chat template): a plain prompt.
  const miniatures = [
    { name: 'llama-mini', file: model.file, tokens: model.tokens, chat: true, prompt: PROMPT },
    { name: 'falcon-mini', file: path.join(path.dirname(model.file), 'falcon-mini.cria'), tokens: 48, chat: false, prompt: 'Once upon a time' },
  ].filter((m) => fs.existsSync(m.file));
  const native = (m) =>
    m.chat ? nativeAnswer(m.file, m.prompt, m.tokens)
      : execFileSync(CLI, ['run', '-m', m.file, '--greedy', '-p', m.prompt, '-n', String(m.tokens), '--quiet'], { encoding: 'utf8' })
        .replace(/\n$/, '');

  test('both miniatures are here', () => assert.equal(miniatures.length, 2));

  for (const m of miniatures) {
    test(`${m.name}: 2 and 3 instances give the greedy text of one instance and of cria run`, async () => {
      const want = native(m);
      assert.ok(want.length >= 20, `the native answer is too short to compare: ${JSON.stringify(want)}`);
      const req = { prompt: m.prompt, chat: m.chat, greedy: true, max_new_tokens: m.tokens };
      const one = await Cria.load(m.file, { variant: 'st' });
      try {
        assert.equal(one.instances, 1);
        assert.equal(await one.generate(req), want, 'one instance');
      } finally {
        one.dispose();
      }
      const size = fs.statSync(m.file).size;
      for (const n of [2, 3]) {
        const events = [];
        const llm = await Cria.load(m.file, { variant: 'st', instances: n, onProgress: (p) => events.push(p) });
        try {
          assert.equal(llm.instances, n);
          // One progress bar over every instance's download.
          const sum = llm.stages.reduce((a, s) => a + s.bytes, 0);
          const last = events.filter((e) => e.phase === 'downloading').at(-1);
          assert.equal(last.total, sum);
          assert.equal(last.loaded, sum);
          assert.deepEqual([...new Set(events.filter((e) => e.instance !== undefined).map((e) => e.instance))].sort(),
            [...Array(n).keys()]);
          // The layers are shared out in order, each instance fetching less
          // than the whole file.
          assert.equal(llm.stages.length, n);
          assert.equal(llm.stages[0].layers[0], 0);
          assert.equal(llm.stages[n - 1].layers[1], llm.info.num_layers);
          for (let i = 0; i < n; i++) {
            const s = llm.stages[i];
            assert.ok(s.layers[1] > s.layers[0], `instance ${i} holds no layer`);
            if (i > 0) assert.equal(s.layers[0], llm.stages[i - 1].layers[1]);
            assert.ok(s.bytes > 0 && s.bytes < size, `instance ${i} received ${s.bytes} of ${size} bytes`);
          }
          assert.equal(await llm.generate(req), want, `${n} instances`);
          // A second request, streamed (every instance's KV cache reused).
          const again = llm.stream(m.chat ? { messages: [{ role: 'user', content: m.prompt }] } : { prompt: m.prompt },
            { max_new_tokens: m.tokens, temperature: 0 });
          let text = '';
          for await (const p of again) text += p;
          assert.equal(text, want, `${n} instances, streamed`);
        } finally {
          llm.dispose();
        }
      }
    });
  }

  test('the first instance may finish loading last', { timeout: 30000 }, async () => {
    // The page's word that the later instances are ready then arrives
    // before the first instance waits for it; it must not be lost.
    process.env.CRIA_WEB_TEST_SLOW_FIRST = '500';
    let llm;
    try {
      llm = await Cria.load(model.file, { variant: 'st', instances: 2 });
    } finally {
      delete process.env.CRIA_WEB_TEST_SLOW_FIRST;
    }
    try {
      assert.equal(await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens }),
        nativeAnswer(model.file, PROMPT, model.tokens));
    } finally {
      llm.dispose();
    }
  });

  test('an ArrayBuffer source splits too', async () => {
    const bytes = fs.readFileSync(model.file);
    const llm = await Cria.load(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length), { variant: 'st', instances: 2 });
    try {
      assert.equal(llm.instances, 2);
      assert.equal(await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens }),
        nativeAnswer(model.file, PROMPT, model.tokens));
    } finally {
      llm.dispose();
    }
  });

  test('the threaded build splits too', async () => {
    const llm = await Cria.load(model.file, { variant: 'mt', threads: 2, instances: 2 });
    try {
      assert.equal(llm.instances, 2);
      assert.equal(llm.variant, 'mt');
      assert.equal(await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens }),
        nativeAnswer(model.file, PROMPT, model.tokens));
    } finally {
      llm.dispose();
    }
  });

  test('a model too large for one instance is split automatically', async () => {
    // Each instance holds at most 60% of the file (a test hook standing in
    // for a model larger than wasm32's 4 GiB); the tied embedding sits on
    // the first and the last instance, so that takes three.
    const size = fs.statSync(model.file).size;
    process.env.CRIA_WEB_TEST_MODEL_ROOM = String(Math.floor(size * 0.6));
    let llm;
    try {
      await assert.rejects(Cria.load(model.file, { variant: 'st', instances: 1 }), /more than the browser build can hold/);
      llm = await Cria.load(model.file, { variant: 'st' });
    } finally {
      delete process.env.CRIA_WEB_TEST_MODEL_ROOM;
    }
    try {
      assert.equal(llm.instances, 3);
      for (const s of llm.stages) assert.ok(s.bytes <= size * 0.6, `an instance holds ${s.bytes} of ${size} bytes`);
      assert.equal(await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens }),
        nativeAnswer(model.file, PROMPT, model.tokens));
    } finally {
      llm.dispose();
    }
  });

  test('Stop works across instances; the model stays usable', async () => {
    // The long-context test model has two layers.
    const llm = await Cria.load(TEST_MODEL, { variant: 'st', instances: 2 });
    try {
      assert.equal(llm.instances, 2);
      assert.ok(llm.cancelWhileRunning);
      const ctl = new AbortController();
      const s = llm.stream({ prompt: 'Once upon a time', max_new_tokens: 4000, greedy: true, eos_ids: [-1] }, { signal: ctl.signal });
      await abortAtThirdPiece(s, ctl);
      const t0 = Date.now();
      await llm.generate({ prompt: PROMPT, max_new_tokens: 1 });
      assert.ok(Date.now() - t0 < 5000, `the next request waited ${Date.now() - t0} ms`);
    } finally {
      llm.dispose();
    }
  });

  test('an instance whose worker dies ends the stream with an error naming it; loading again works', async () => {
    process.env.CRIA_WEB_TEST_FAULT = '20'; // the second instance exits on its 20th forward call
    let llm;
    try {
      llm = await Cria.load(TEST_MODEL, { variant: 'st', instances: 2 });
    } finally {
      delete process.env.CRIA_WEB_TEST_FAULT;
    }
    let n = 0;
    await assert.rejects(
      (async () => {
        for await (const _ of llm.stream({ prompt: 'Once upon a time', max_new_tokens: 4000, eos_ids: [-1] })) n++;
      })(),
      /instance 2 of 2 \(layers 1-1\) stopped: the model worker exited/,
    );
    assert.ok(n > 0 && n < 30, `${n} pieces before the failure`);
    await assert.rejects(llm.generate({ prompt: PROMPT, max_new_tokens: 1 }), /instance 2 of 2/);
    const again = await Cria.load(TEST_MODEL, { variant: 'st', instances: 2 });
    assert.equal(typeof (await again.generate({ prompt: PROMPT, max_new_tokens: 2 })), 'string');
    again.dispose();
  });

  test('one flipped byte in an instance\'s range is refused, naming the tensor', async () => {
    const dir = tmpdir('cria-node-');
    const f = path.join(dir, 'flipped.cria');
    fs.writeFileSync(f, corruptedDataCopy(model.file));
    try {
      await assert.rejects(Cria.load(f, { variant: 'st', instances: 2 }), /flipped\.cria: checksum mismatch in tensor \S+/);
    } finally {
      fs.rmSync(dir, { recursive: true });
    }
  });

  test('over HTTP: each instance asks for its own byte ranges; a server without Range support still works', async () => {
    const want = nativeAnswer(model.file, PROMPT, model.tokens);
    const size = fs.statSync(model.file).size;
    for (const ranges of [true, false]) {
      const server = await startServer({ port: 0, ranges });
      const asked = [];
      server.server.on('request', (req) => req.url.endsWith('.cria') && asked.push(req.headers.range || 'all'));
      try {
        const llm = await Cria.load(`${server.url}/dist/models/${path.basename(model.file)}`, { variant: 'st', instances: 2 });
        try {
          assert.equal(llm.instances, 2);
          for (const s of llm.stages) assert.ok(s.bytes < size, `an instance received ${s.bytes} of ${size} bytes`);
          assert.equal(await llm.generate({ prompt: PROMPT, chat: true, greedy: true, max_new_tokens: model.tokens }), want,
            ranges ? 'Range server' : 'Range-less server');
        } finally {
          llm.dispose();
        }
        // Every request named a range; no instance asked for the whole file.
        assert.ok(asked.length >= 4, asked.join(', '));
        for (const a of asked) assert.match(a, /^bytes=\d+-\d+$/);
      } finally {
        server.server.closeAllConnections();
        await server.close();
      }
    }
  });

  test('bad instance counts are refused', async () => {
    await assert.rejects(Cria.load(model.file, { variant: 'st', instances: 0 }), /instances must be a positive integer/);
    await assert.rejects(Cria.load(model.file, { variant: 'st', instances: 99 }), /99 instances for \d+ layers/);
  });
});
