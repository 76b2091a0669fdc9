// The engine side of the JS library: one worker holds one model and one
// session. A classic script in browsers (a dedicated Worker) and CommonJS in
// Node (a worker_threads Worker); cria.mjs is the other side of the messages.
//
// page -> worker: {type: 'load', id, source, variant, threads, nCtx, kv, cancel, stage?, chain?}
//                 {type: 'plan', id, source, variant, threads, instances}
//                 {type: 'chain-ready'} (split: every later instance is loaded)
//                 {type: 'generate', id, request}   {type: 'render', id, request}
//                 {type: 'cancel', id}              {type: 'chunk', id, data | done}
// worker -> page: {type: 'progress', id, phase, loaded, total}
//                 {type: 'pull', id}   (the next chunk of an in-memory source)
//                 {type: 'loaded', id, info, threads, nCtx, variant, jspi}
//                 {type: 'start', id}   {type: 'piece', id, text}   {type: 'done', id, result}
//                 {type: 'error', id, message, code?}   {type: 'fatal', message}
// A model split across N workers (cria.mjs, "instances"): worker 0 holds
// the first layers and runs generation; a token's hidden state goes down a
// chain of MessagePorts, worker i -> i + 1, and the last worker writes the
// logits (or an error) into a SharedArrayBuffer that worker 0 waits on with
// Atomics.wait: cria_generate is one synchronous WebAssembly call, which
// cannot return to the event loop for an answer mid-token. The later
// workers wait with their event loop free, so their ports deliver.
'use strict';

(function () {
  const isNode =
    typeof process === 'object' && !!(process.versions && process.versions.node) && typeof importScripts !== 'function';
  let post, base, nodeFs;
  if (isNode) {
    const { parentPort } = require('worker_threads');
    nodeFs = require('fs');
    post = (m, t) => parentPort.postMessage(m, t);
    parentPort.on('message', (data) => onMessage(data));
    base = __dirname + '/';
  } else {
    post = (m, t) => self.postMessage(m, t);
    self.onmessage = (e) => onMessage(e.data);
    base = new URL('./', self.location.href).href;
  }

  const MiB = 1024 * 1024;
  // Room kept free beyond the model file for the runtime, the forward
  // scratch and a minimal context; the context is then sized to what is left.
  const RESERVE = 96 * MiB;
  const MIN_CTX = 256;

  let M = null; // the Emscripten module
  let memory = null; // its WebAssembly.Memory
  let heapCache = null;
  let variant = 'st';
  let jspi = false;
  let generateCall = null; // crw_generate, wrapped with WebAssembly.promising under JSPI
  let model = 0, session = 0, modelPtr = 0;
  let cancelFlag = null; // Int32Array on a SharedArrayBuffer (threaded build)
  let current = null; // {id, cancelled}
  let lastYield = 0;
  const pulls = new Map(); // id -> resolve of the pending chunk
  const decoder = new TextDecoder('utf-8');
  const encoder = new TextEncoder();
  let queue = Promise.resolve();

  // Helpers in files of their own (loaded beside this one).
  const [criaSources, criaChain] = isNode
    ? [require('./sources.js'), require('./chain.js')]
    : (importScripts(base + 'sources.js', base + 'chain.js'), [self.criaSources, self.criaChain]);
  const { readerChunks, nodeChunks, openRange, readRange, rangeKey, openCache } = criaSources({ nodeFs, MiB });
  const chainApi = criaChain({
    isNode, module: () => M, model: () => model, heap, cstring, allocString, lastError, encoder, decoder,
  });

  function heap() {
    const buf = memory.buffer;
    if (!heapCache || heapCache.buffer !== buf) heapCache = new Uint8Array(buf);
    return heapCache;
  }

  function cstring(ptr) {
    ptr = ptr >>> 0;
    if (!ptr) return '';
    const h = heap();
    let end = ptr;
    while (h[end]) end++;
    // TextDecoder refuses views of shared memory: copy first.
    return decoder.decode(h.slice(ptr, end));
  }

  function allocString(s) {
    const bytes = encoder.encode(s);
    const p = M._malloc(bytes.length + 1) >>> 0;
    if (!p) throw new Error('out of wasm memory');
    const h = heap();
    h.set(bytes, p);
    h[p + bytes.length] = 0;
    return p;
  }

  function lastError() {
    return cstring(M._crw_last_error()) || 'unknown error';
  }

  // Test hook (web/test/node.test.mjs): CRIA_WEB_TEST_MODEL_ROOM=bytes makes
  // an instance hold models of that size at most, so a miniature takes the
  // path of a model too large for wasm32 (split automatically).
  const testRoom = isNode ? Number(process.env.CRIA_WEB_TEST_MODEL_ROOM || 0) : 0;
  function modelRoom() {
    const free = M._crw_heap_free();
    return testRoom ? Math.min(free, testRoom + RESERVE) : free;
  }

  function gib(n) {
    return (n / 1024 / MiB).toFixed(2) + ' GiB';
  }

  // ---- module start-up ---------------------------------------------------

  function findMemory(...objs) {
    for (const o of objs)
      for (const k of Object.keys(o || {})) if (o[k] instanceof WebAssembly.Memory) return o[k];
    return null;
  }

  // Emscripten 3.1.6 minifies import and export names; the two functions
  // JSPI needs are found by what they are: the import whose source calls
  // criaYield, and the export behind the Module._crw_generate wrapper.
  function importKey(imports, marker) {
    for (const k of Object.keys(imports)) if (typeof imports[k] === 'function' && String(imports[k]).includes(marker)) return k;
    return null;
  }

  function exportOf(mod, name) {
    const m = /Module\["asm"\]\["([^"]+)"\]/.exec(String(mod[name]));
    return m ? mod.asm[m[1]] : mod[name];
  }

  async function startModule(want, threads) {
    variant = want;
    const glue = base + 'cria-' + variant + '.js';
    const wasmFile = base + 'cria-' + variant + '.wasm';
    let factory;
    if (isNode) {
      factory = require(glue);
    } else {
      importScripts(glue);
      factory = self['createCria_' + variant];
    }
    const canJspi = variant === 'st' && typeof WebAssembly.Suspending === 'function' && typeof WebAssembly.promising === 'function';
    let instanceExports = null;
    const config = {
      criaPoolSize: Math.max(0, threads - 1),
      mainScriptUrlOrBlob: glue,
      locateFile: (p) => base + p,
      criaPiece: onPiece,
      criaYield: onYield,
      criaHost: chainApi.host,
      print: (s) => console.log(s),
      printErr: (s) => console.error(s),
      onAbort: (what) => post({ type: 'fatal', message: 'the WebAssembly module stopped: ' + what }),
      instantiateWasm(imports, receive) {
        const env = imports.a || imports.env;
        if (canJspi) {
          const k = importKey(env, 'criaYield');
          if (k) {
            env[k] = new WebAssembly.Suspending(onYield);
            jspi = true;
          }
        }
        const ready = isNode
          ? nodeFs.promises.readFile(wasmFile).then((b) => WebAssembly.instantiate(b, imports))
          : WebAssembly.instantiateStreaming(fetch(wasmFile), imports).catch(() =>
              fetch(wasmFile)
                .then((r) => r.arrayBuffer())
                .then((b) => WebAssembly.instantiate(b, imports)),
            );
        ready.then(
          (r) => {
            instanceExports = r.instance.exports;
            memory = findMemory(env, instanceExports);
            receive(r.instance, r.module);
          },
          (e) => post({ type: 'fatal', message: 'could not start the WebAssembly module: ' + e }),
        );
        return {};
      },
    };
    M = await factory(config);
    if (!memory) memory = M.wasmMemory || findMemory(M.asm);
    const gen = exportOf(M, '_crw_generate');
    generateCall = jspi ? WebAssembly.promising(gen) : gen;
  }

  // ---- generation callbacks ---------------------------------------------

  function onPiece(seq, ptr, len) {
    if (!current) return 1;
    if (seq === 0 && len > 0) post({ type: 'piece', id: current.id, text: decoder.decode(heap().slice(ptr, ptr + len)) });
    return current.cancelled ? 1 : 0;
  }

  function stopNow() {
    if (!current) return 1;
    // The page writes the id of the request to stop, so a late store can
    // never stop the next request.
    if (cancelFlag && Atomics.load(cancelFlag, 0) === current.id) current.cancelled = true;
    return current.cancelled ? 1 : 0;
  }

  // Without shared memory the worker only hears of a cancel between tasks:
  // under JSPI, give the event loop a turn every 50 ms of generation.
  function onYield() {
    if (!jspi || Date.now() - lastYield < 50) return stopNow();
    return new Promise((resolve) => {
      const ch = new MessageChannel();
      ch.port1.onmessage = () => {
        ch.port1.close();
        lastYield = Date.now();
        resolve(stopNow());
      };
      ch.port2.postMessage(0);
    });
  }

  // ---- loading -----------------------------------------------------------

  // Yields Uint8Array chunks of the model and says its size as soon as known.
  async function openSource(id, src, sizeKnown) {
    if (src.kind === 'url') {
      let resp = null;
      let cache = null;
      if (src.cache && typeof caches !== 'undefined') {
        try {
          cache = await caches.open(src.cache);
          resp = (await cache.match(src.url)) || null;
        } catch (e) {
          cache = null;
        }
      }
      const cached = !!resp;
      if (!resp) {
        try {
          resp = await fetch(src.url);
        } catch (e) {
          throw new Error(`could not download ${src.url}: ${e.message || e}`);
        }
        if (!resp.ok) throw new Error(`could not download ${src.url}: HTTP ${resp.status} ${resp.statusText}`.trim());
      }
      const len = resp.headers.get('content-length');
      const encoded = resp.headers.get('content-encoding');
      if (len && !encoded) sizeKnown(Number(len));
      const reader = resp.body.getReader();
      return { cached, cache, chunks: readerChunks(reader), cancel: () => reader.cancel().catch(() => {}) };
    }
    if (src.kind === 'blob') {
      sizeKnown(src.blob.size);
      const reader = src.blob.stream().getReader();
      return { chunks: readerChunks(reader), cancel: () => reader.cancel().catch(() => {}) };
    }
    if (src.kind === 'path') {
      const st = await nodeFs.promises.stat(src.path);
      sizeKnown(st.size);
      const stream = nodeFs.createReadStream(src.path, { highWaterMark: 4 * MiB });
      return { chunks: nodeChunks(stream), cancel: () => stream.destroy() };
    }
    if (src.kind === 'pull') {
      sizeKnown(src.size);
      return { chunks: pullChunks(id), cancel: () => {} };
    }
    throw new Error('unknown model source');
  }

  async function* pullChunks(id) {
    for (;;) {
      const msg = await new Promise((resolve) => {
        pulls.set(id, resolve);
        post({ type: 'pull', id });
      });
      if (msg.done) return;
      yield new Uint8Array(msg.data);
    }
  }

  function readU64(bytes, off) {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return v.getUint32(off, true) + v.getUint32(off + 4, true) * 4294967296;
  }

  async function load(msg) {
    const { id, source } = msg;
    if (!M) {
      post({ type: 'progress', id, phase: 'starting', loaded: 0, total: 0 });
      await startModule(msg.variant, msg.threads);
    }
    cancelFlag = msg.cancel ? new Int32Array(msg.cancel) : null;
    let total = -1;
    const src = await openSource(id, source, (n) => (total = n));
    const name = source.name || source.url || source.path || 'model.cria';
    const heapMax = M._crw_heap_max();
    const fits = (n) => n + RESERVE <= modelRoom();
    const tooBig = (n) => {
      const e = new Error(
        `${name} is ${gib(n)}, more than the browser build can hold: WebAssembly (wasm32) has a 4 GiB address ` +
          `space, of which about ${gib(Math.max(0, modelRoom() - RESERVE))} is left for a model ` +
          `(the rest holds the runtime and the context). Use a smaller or more strongly quantized model.`,
      );
      // The page splits the model across instances instead (cria.mjs).
      e.code = 'too_big';
      e.size = n;
      e.budget = Math.max(0, modelRoom() - RESERVE);
      return e;
    };
    // The size, before any byte is stored: from the response or the file,
    // else from the file's own preamble (its first 64 bytes).
    let head = new Uint8Array(0);
    const it = src.chunks[Symbol.asyncIterator]();
    let pending = null;
    try {
      while (head.length < 64) {
        const { done, value } = await it.next();
        if (done) break;
        const h = new Uint8Array(head.length + value.length);
        h.set(head);
        h.set(value, head.length);
        head = h;
      }
      const magic = String.fromCharCode(...head.slice(0, 4));
      if (head.length < 64 || magic !== 'CRIA')
        throw new Error(`${name} is not a cria model file (it does not start with the CRIA preamble)`);
      const declared = readU64(head, 40);
      if (total < 0) total = declared;
      if (total > heapMax || !fits(total)) throw tooBig(total);
      modelPtr = M._crw_alloc(total) >>> 0;
      if (!modelPtr) throw tooBig(total);
      pending = head;
    } catch (e) {
      src.cancel();
      throw e;
    }
    // Stream the bytes straight into wasm memory, checking each tensor's
    // checksum as soon as its last byte is in (no second pass): a corrupted
    // download is refused, naming the tensor, and never cached.
    let off = 0;
    let lastReport = 0;
    const phase = src.cached ? 'reading cache' : 'downloading';
    const headerEnd = readU64(head, 8) + readU64(head, 16);
    const namePtr = allocString(name);
    let verifier = 0;
    const verify = () => {
      if (!verifier) {
        if (off < headerEnd && off < total) return;
        verifier = M._crw_verify_begin(modelPtr, off, total, namePtr) >>> 0;
        if (!verifier) throw new Error(lastError());
      } else if (!M._crw_verify_update(verifier, modelPtr, off)) {
        throw new Error(lastError());
      }
    };
    const dropVerifier = () => {
      if (verifier) M._crw_verify_end(verifier);
      verifier = 0;
    };
    const store = (chunk) => {
      if (off + chunk.length > total) throw new Error(`${name} is larger than announced (${total} bytes)`);
      heap().set(chunk, modelPtr + off);
      off += chunk.length;
      verify();
      const now = Date.now();
      if (now - lastReport > 100) {
        lastReport = now;
        post({ type: 'progress', id, phase, loaded: off, total });
      }
    };
    try {
      store(pending);
      for (;;) {
        const { done, value } = await it.next();
        if (done) break;
        store(value);
      }
    } catch (e) {
      src.cancel();
      dropVerifier();
      M._free(namePtr);
      M._crw_free(modelPtr);
      modelPtr = 0;
      throw e;
    }
    post({ type: 'progress', id, phase, loaded: off, total });
    if (off < total) {
      dropVerifier();
      M._free(namePtr);
      M._crw_free(modelPtr);
      modelPtr = 0;
      throw new Error(`${name}: the download ended after ${off} of ${total} bytes`);
    }
    post({ type: 'progress', id, phase: 'verifying', loaded: off, total });
    const complete = verifier && M._crw_verify_end(verifier);
    verifier = 0;
    if (!complete) {
      const err = lastError();
      M._free(namePtr);
      M._crw_free(modelPtr);
      modelPtr = 0;
      throw new Error(err);
    }
    model = M._crw_model_load(modelPtr, off, namePtr) >>> 0;
    M._free(namePtr);
    if (!model) {
      const err = lastError();
      M._crw_free(modelPtr);
      modelPtr = 0;
      throw new Error(err);
    }
    const { info, threads } = openSession(msg, name);
    if (src.cache && !src.cached && source.kind === 'url') {
      post({ type: 'progress', id, phase: 'caching', loaded: off, total });
      await writeCache(src.cache, source.url, off).catch(() => {});
    }
    post({ type: 'loaded', id, info, threads, nCtx: M._crw_session_n_ctx(session), variant, jspi });
  }

  // The session of a loaded model: the context asked for (default: the
  // model's, at most 4096), shrunk to the memory left.
  function openSession(msg, name) {
    const info = JSON.parse(cstring(M._crw_model_info(model)));
    const trained = info.context_length || 4096;
    const want = msg.nCtx > 0 ? Math.min(msg.nCtx, trained) : Math.min(trained, 4096);
    const room = M._crw_heap_free() - 32 * MiB;
    // kv_bytes_per_token is for f16 (2 bytes a value); q8 / q4 rows hold
    // 1 / 0.5 byte a value plus a 4-byte scale per 32 (kv_rows.h).
    const kv = msg.kv || 'f16';
    const perValue = { f16: 2, q8: 1.125, q4: 0.625 }[kv];
    const fitCtx = Math.floor(room / Math.max(1, (info.kv_bytes_per_token * perValue) / 2));
    const nCtx = Math.min(want, fitCtx);
    if (nCtx < Math.min(MIN_CTX, want)) {
      unloadModel();
      throw new Error(`${name} fits in memory, but leaves no room for a context of ${MIN_CTX} tokens (wasm32's 4 GiB limit)`);
    }
    const threads = variant === 'mt' ? Math.max(1, msg.threads) : 1;
    const kvPtr = allocString(kv);
    session = M._crw_session_create(model, threads, nCtx, kvPtr) >>> 0;
    M._free(kvPtr);
    if (!session) {
      const err = lastError();
      unloadModel();
      throw new Error(err);
    }
    return { info, threads };
  }

  // Stores the model in Cache Storage from wasm memory, a few MiB at a time
  // (only a file that loaded cleanly is cached).
  async function writeCache(cache, url, size, ptr = modelPtr) {
    let pos = 0;
    const body = new ReadableStream(
      {
        pull(ctrl) {
          if (pos >= size) {
            ctrl.close();
            return;
          }
          const n = Math.min(8 * MiB, size - pos);
          ctrl.enqueue(heap().slice(ptr + pos, ptr + pos + n));
          pos += n;
        },
      },
      { highWaterMark: 0 },
    );
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(size) };
    await cache.put(url, new Response(body, { headers }));
  }

  function unloadModel() {
    if (session) M._crw_session_free(session);
    chainApi.freeStages();
    if (model) M._crw_model_free(model);
    if (modelPtr) M._crw_free(modelPtr);
    for (const p of rangePtrs) M._crw_free(p);
    rangePtrs = [];
    session = model = modelPtr = 0;
  }

  // ---- a model split across workers -------------------------------------

  // The page's word that every later instance has loaded: it may come
  // before worker 0 has loaded its own share (then it is kept), or after.
  let chainReady = null; // resolves worker 0's wait for it
  let chainIsReady = false;
  const testSlowFirst = isNode ? Number(process.env.CRIA_WEB_TEST_SLOW_FIRST || 0) : 0;
  let rangePtrs = []; // this instance's byte ranges in wasm memory
  let pendingCache = null; // {cache, url, ranges}: written on the page's 'cache'

  async function commitCache(msg) {
    const p = pendingCache;
    pendingCache = null;
    if (p)
      for (const [offset, size, ptr] of p.ranges)
        await writeCache(p.cache, rangeKey(p.url, offset, size), size, ptr).catch(() => {});
    post({ type: 'done', id: msg.id, result: null });
  }

  // The preamble and header (every instance reads them): {ptr, size, fileSize}.
  async function readHead(src, name, cache, sourceSize = 0) {
    const pre = await readRange(src, 0, 64, cache);
    if (String.fromCharCode(...pre.slice(0, 4)) !== 'CRIA')
      throw new Error(`${name} is not a cria model file (it does not start with the CRIA preamble)`);
    const size = 64 + readU64(pre, 16);
    const fileSize = readU64(pre, 40);
    if (sourceSize && sourceSize !== fileSize)
      throw new Error(`${name} is ${gib(sourceSize)}, but its preamble says ${fileSize} bytes: the file is damaged`);
    if (size > fileSize || size > 1 << 30) throw new Error(`${name}: the header size in its preamble is out of range`);
    const head = await readRange(src, 0, size, cache);
    const ptr = M._malloc(size) >>> 0;
    if (!ptr) throw new Error('out of wasm memory');
    heap().set(head, ptr);
    return { ptr, size, fileSize };
  }

  // Worker 0, before anything is fetched beyond the header: how the file
  // splits into msg.instances stages.
  async function plan(msg) {
    if (!M) await startModule(msg.variant, msg.threads);
    const name = msg.source.name || msg.source.url || msg.source.path || 'model.cria';
    const head = await readHead(msg.source, name, await openCache(msg.source), msg.sourceSize);
    const namePtr = allocString(name);
    const p = M._crw_split_plan(head.ptr, head.size, head.fileSize, namePtr, msg.instances) >>> 0;
    M._free(namePtr);
    M._free(head.ptr);
    if (!p) throw new Error(lastError());
    const result = JSON.parse(cstring(p));
    result.file_size = head.fileSize;
    result.head_size = head.size;
    result.heap_free = modelRoom() - RESERVE;
    post({ type: 'done', id: msg.id, result });
  }

  // One instance of a split model: the header and its own byte ranges,
  // each streamed into wasm memory and checked tensor by tensor as it
  // arrives (the same checksums as the single-instance path).
  async function loadStage(msg) {
    const { id, source, stage } = msg;
    if (!M) {
      post({ type: 'progress', id, phase: 'starting', loaded: 0, total: 0 });
      await startModule(msg.variant, msg.threads);
    }
    cancelFlag = msg.cancel ? new Int32Array(msg.cancel) : null;
    const name = source.name || source.url || source.path || 'model.cria';
    const who = `instance ${stage.index + 1} of ${stage.count} (layers ${stage.layers[0]}-${stage.layers[1] - 1})`;
    // Test hook (web/test/node.test.mjs): CRIA_WEB_TEST_SLOW_FIRST=ms holds
    // the first instance back, so the later ones finish loading before it.
    if (testSlowFirst && stage.index === 0) await new Promise((r) => setTimeout(r, testSlowFirst));
    const cache = await openCache(source);
    const head = await readHead(source, name, cache);
    modelPtr = head.ptr;
    const fetched = []; // ranges that came from the network, cached once all verified
    const total = head.size + stage.ranges.reduce((a, r) => a + r[1], 0);
    let loaded = head.size;
    let lastReport = 0;
    const namePtr = allocString(name);
    const ranges = [];
    try {
      for (const [offset, size] of stage.ranges) {
        if (size + RESERVE > modelRoom())
          throw new Error(`${name}: ${who} needs ${gib(total)}, more than its wasm32 memory holds; use more instances`);
        const ptr = M._crw_alloc(size) >>> 0;
        if (!ptr) throw new Error(`${name}: ${who} ran out of wasm32 memory; use more instances`);
        rangePtrs.push(ptr);
        ranges.push([offset, size, ptr]);
        const v = M._crw_verify_range_begin(head.ptr, head.size, head.fileSize, offset, size, namePtr) >>> 0;
        if (!v) throw new Error(lastError());
        let pos = 0;
        const r = await openRange(source, offset, size, cache);
        if (cache && !r.cached) fetched.push([offset, size, ptr]);
        try {
          for await (const c of r.chunks) {
            heap().set(c, ptr + pos);
            pos += c.length;
            loaded += c.length;
            if (!M._crw_verify_update(v, ptr, pos)) throw new Error(lastError());
            const now = Date.now();
            if (now - lastReport > 100) {
              lastReport = now;
              post({ type: 'progress', id, phase: 'downloading', loaded, total });
            }
          }
        } catch (e) {
          r.cancel();
          M._crw_verify_end(v);
          throw e;
        }
        if (pos < size) {
          M._crw_verify_end(v);
          throw new Error(`${name}: the download ended after ${offset + pos} of ${head.fileSize} bytes (truncated)`);
        }
        if (!M._crw_verify_end(v)) throw new Error(lastError());
      }
      post({ type: 'progress', id, phase: 'downloading', loaded, total });
      const first = stage.index === 0;
      if (first) {
        chainApi.first(msg.chain, stage.count, msg.stages);
        M._crw_pipeline_host(1);
      }
      const json = allocString(JSON.stringify(ranges));
      model = M._crw_model_load_ranges(head.ptr, head.size, head.fileSize, json, stage.layers[0], stage.layers[1], namePtr) >>> 0;
      M._free(json);
      if (!model) throw new Error(lastError());
    } catch (e) {
      unloadModel();
      throw e;
    } finally {
      M._free(namePtr);
    }
    // Kept for an offline reload once every instance has loaded (the page
    // then sends 'cache'): a file that fails anywhere is never cached.
    if (cache && fetched.length)
      pendingCache = { cache, url: source.url, ranges: [[0, 64, head.ptr], [0, head.size, head.ptr], ...fetched] };
    if (stage.index > 0) {
      chainApi.serve(msg.chain, stage.index, stage.count, variant === 'mt' ? Math.max(1, msg.threads) : 1, who);
      post({ type: 'loaded', id, info: JSON.parse(cstring(M._crw_model_info(model))), bytes: loaded, variant, jspi });
      return;
    }
    // Worker 0 opens its session, and so every instance's, once they are all loaded.
    if (!chainIsReady) await new Promise((resolve) => (chainReady = resolve));
    const { info, threads } = openSession(msg, name);
    post({ type: 'loaded', id, info, threads, nCtx: M._crw_session_n_ctx(session), variant, jspi, bytes: loaded });
  }

  // ---- requests ----------------------------------------------------------

  async function generate(msg) {
    if (!session) throw new Error('no model is loaded');
    if (msg.cancelled) {
      const none = { prompt_tokens: 0, generated_tokens: 0, prefill_seconds: 0, decode_seconds: 0 };
      post({ type: 'done', id: msg.id, result: { ...none, time_to_first_token: 0, stop_reason: 'cancelled' } });
      return;
    }
    current = { id: msg.id, cancelled: false };
    post({ type: 'start', id: msg.id });
    lastYield = Date.now();
    const req = allocString(JSON.stringify(msg.request));
    let status;
    try {
      status = await generateCall(session, model, req);
    } finally {
      M._free(req);
    }
    const cancelled = current.cancelled;
    current = null;
    if (status !== 0) throw new Error(lastError());
    const result = JSON.parse(cstring(M._crw_result()));
    if (cancelled) result.stop_reason = 'cancelled';
    post({ type: 'done', id: msg.id, result });
  }

  function render(msg) {
    const req = allocString(JSON.stringify(msg.request));
    const p = M._crw_render_prompt(model, req) >>> 0;
    M._free(req);
    if (!p) throw new Error(lastError());
    post({ type: 'done', id: msg.id, result: cstring(p) });
  }

  const cancelled = new Set();

  function onMessage(msg) {
    switch (msg.type) {
      case 'cancel':
        if (current && current.id === msg.id) current.cancelled = true;
        else cancelled.add(msg.id);
        return;
      case 'chain-ready':
        chainIsReady = true;
        if (chainReady) chainReady();
        chainReady = null;
        return;
      case 'chunk': {
        const r = pulls.get(msg.id);
        if (r) {
          pulls.delete(msg.id);
          r(msg);
        }
        return;
      }
      default:
        break;
    }
    // Everything else runs one at a time, in order.
    queue = queue.then(async () => {
      try {
        if (msg.type === 'load') await (msg.stage ? loadStage(msg) : load(msg));
        else if (msg.type === 'plan') await plan(msg);
        else if (msg.type === 'cache') await commitCache(msg);
        else if (msg.type === 'generate') {
          if (cancelled.delete(msg.id)) msg.cancelled = true;
          await generate(msg);
        } else if (msg.type === 'render') render(msg);
        else if (msg.type === 'dispose') {
          unloadModel();
          post({ type: 'done', id: msg.id, result: null });
        }
      } catch (e) {
        current = null;
        const extra = e && e.code === 'too_big' ? { code: e.code, size: e.size, budget: e.budget } : {};
        post({ type: 'error', id: msg.id, message: e && e.message ? e.message : String(e), ...extra });
      }
    });
  }
})();
