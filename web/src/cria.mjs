// cria in the browser and in Node: the page side of the library. The model
// runs in a worker (a Web Worker, or a worker_threads Worker in Node) so the
// page never blocks; see worker.js for the other side.
//
//   import { Cria } from './cria.mjs';
//   const llm = await Cria.load('model.cria', { onProgress });
//   for await (const piece of llm.stream({ messages }, { max_new_tokens: 128 })) out.textContent += piece;
const isNode =
  typeof process === 'object' && !!(process.versions && process.versions.node) && typeof window === 'undefined' &&
  typeof importScripts === 'undefined';

const CHUNK = 16 * 1024 * 1024;
const REQUEST_KEYS = [
  'messages', 'prompt', 'system', 'chat', 'max_new_tokens', 'max_length', 'temperature', 'top_k', 'top_p', 'min_p',
  'repetition_penalty', 'seed', 'greedy', 'stop', 'add_bos', 'prompt_ids', 'eos_ids', 'truncate',
];

async function defaultThreads() {
  if (isNode) {
    const os = await import('node:os');
    return Math.min(os.availableParallelism ? os.availableParallelism() : os.cpus().length, 8);
  }
  return Math.min((globalThis.navigator && navigator.hardwareConcurrency) || 1, 8);
}

// Threads need SharedArrayBuffer, which browsers give only to
// cross-origin-isolated pages (COOP + COEP headers).
export function threadsAvailable() {
  if (typeof SharedArrayBuffer !== 'function') return false;
  return isNode || globalThis.crossOriginIsolated === true;
}

async function makeWorker() {
  const url = new URL('./worker.js', import.meta.url);
  if (isNode) {
    const { Worker } = await import('node:worker_threads');
    const { fileURLToPath } = await import('node:url');
    const w = new Worker(fileURLToPath(url));
    return {
      post: (m, t) => w.postMessage(m, t),
      on: (fn) => w.on('message', fn),
      onError: (fn) => {
        w.on('error', (e) => fn(e && e.message ? e.message : String(e)));
        w.on('exit', (code) => fn(`the model worker exited (code ${code})`));
      },
      ref: () => w.ref(),
      unref: () => w.unref(),
      terminate: () => w.terminate(),
    };
  }
  const w = new Worker(url);
  return {
    post: (m, t) => w.postMessage(m, t),
    on: (fn) => (w.onmessage = (e) => fn(e.data)),
    onError: (fn) => (w.onerror = (e) => fn(e.message || 'the model worker failed to start')),
    ref: () => {},
    unref: () => {},
    terminate: () => w.terminate(),
  };
}

async function describeSource(source, options) {
  const cache = options.cache === true ? 'cria-models' : options.cache || null;
  if (typeof source === 'string' || source instanceof URL) {
    const s = String(source);
    if (isNode && !/^https?:/i.test(s)) {
      const { fileURLToPath } = await import('node:url');
      const path = s.startsWith('file:') ? fileURLToPath(s) : s;
      return { source: { kind: 'path', path, name: path } };
    }
    const base = typeof document !== 'undefined' ? document.baseURI : undefined;
    const url = new URL(s, base).href;
    return { source: { kind: 'url', url, cache, name: url } };
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return { source: { kind: 'blob', blob: source, name: source.name || 'model.cria' } };
  }
  let bytes = null;
  if (source instanceof ArrayBuffer) bytes = new Uint8Array(source);
  else if (ArrayBuffer.isView(source)) bytes = new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (bytes) return { source: { kind: 'pull', size: bytes.length, name: options.name || 'model.cria' }, bytes };
  throw new TypeError('Cria.load: pass a URL, a File or Blob, an ArrayBuffer or a typed array');
}

function abortError(signal) {
  if (signal && signal.reason !== undefined) return signal.reason;
  const e = new Error('the request was aborted');
  e.name = 'AbortError';
  return e;
}

// A model larger than one wasm32 memory runs split by layers across
// several workers ("instances"), each with its own WebAssembly memory and
// threads; see worker.js for the chain between them.
function splitAvailable() {
  return typeof SharedArrayBuffer === 'function' && (isNode || globalThis.crossOriginIsolated === true);
}

async function newChannel() {
  if (typeof MessageChannel === 'function') return new MessageChannel();
  const { MessageChannel: MC } = await import('node:worker_threads');
  return new MC();
}

const GiB = 1024 ** 3;
const fmtBytes = (n) => (n >= GiB / 4 ? `${(n / GiB).toFixed(2)} GiB` : `${(n / 1024 ** 2).toFixed(1)} MiB`);

export class Cria {
  #w;
  #others = []; // the later instances' workers of a split model
  #ctl = null; // Int32Array shared with the instances (worker.js, the chain)
  #nextId = 1;
  #handlers = new Map();
  #cancel = null; // Int32Array: the id of the request to stop (threaded build)
  #running = 0;
  #dead = null;

  constructor(key) {
    if (key !== Cria.#key) throw new TypeError('use Cria.load()');
  }
  static #key = Symbol('cria');

  // Loads a .cria model (URL, File/Blob, ArrayBuffer) into a new worker.
  static async load(source, options = {}) {
    const llm = new Cria(Cria.#key);
    await llm.#start(source, options);
    return llm;
  }

  async #start(source, options) {
    const threads = Math.max(1, options.threads || (await defaultThreads()));
    const kv = options.kv === undefined ? 'f16' : options.kv;
    if (!['f16', 'q8', 'q4'].includes(kv)) throw new TypeError(`kv must be 'f16', 'q8' or 'q4' (got ${String(kv)})`);
    let variant = options.variant || 'auto';
    if (variant === 'auto') variant = threads > 1 && threadsAvailable() ? 'mt' : 'st';
    if (variant === 'mt' && !threadsAvailable())
      throw new Error('the multi-threaded build needs SharedArrayBuffer: serve the page with COOP/COEP headers');
    const { source: src, bytes } = await describeSource(source, options);
    const forced = options.instances !== undefined;
    if (forced && !(Number.isInteger(options.instances) && options.instances >= 1))
      throw new TypeError(`instances must be a positive integer (got ${String(options.instances)})`);
    if (forced && options.instances > 1) return this.#startSplit(src, bytes, options, { threads, kv, variant }, options.instances);
    try {
      await this.#startOne(src, bytes, options, { threads, kv, variant });
    } catch (e) {
      // Too large for one wasm32 memory (refused before any byte of the
      // model was stored): split it across as many instances as it needs.
      if (forced || e.code !== 'too_big' || !splitAvailable()) throw e;
      this.#dead = null;
      this.#handlers.clear();
      const n = Math.max(2, Math.ceil(e.size / Math.max(1, e.budget * 0.9)));
      return this.#startSplit(src, bytes, options, { threads, kv, variant }, n, e.size);
    }
  }

  async #startOne(src, bytes, options, { threads, kv, variant }) {
    const w = await makeWorker();
    this.#w = w;
    w.on((m) => this.#onMessage(m));
    // A worker given up for a split (too large) ends without failing this.
    w.onError((msg) => this.#w === w && this.#fail(msg));
    let cancelBuf = null;
    if (variant === 'mt') {
      cancelBuf = new SharedArrayBuffer(4);
      this.#cancel = new Int32Array(cancelBuf);
    }
    const onProgress = options.onProgress;
    let sent = 0;
    const loaded = await this.#request(
      { type: 'load', source: src, variant, threads, nCtx: options.contextLength || 0, kv, cancel: cancelBuf },
      {
        progress: (m) => onProgress && onProgress({ phase: m.phase, loaded: m.loaded, total: m.total }),
        pull: (m) => {
          if (sent >= bytes.length) return this.#w.post({ type: 'chunk', id: m.id, done: true });
          const data = bytes.slice(sent, sent + CHUNK).buffer;
          sent += data.byteLength;
          this.#w.post({ type: 'chunk', id: m.id, data }, [data]);
        },
      },
      options.signal,
    ).catch((e) => {
      this.#w.terminate();
      this.#dead = e;
      throw e;
    });
    this.#describe(loaded, kv, 1);
    this.stages = [{ layers: [0, loaded.info.num_layers], bytes: loaded.info.file_size }];
  }

  #describe(loaded, kv, instances) {
    this.info = loaded.info;
    this.threads = loaded.threads;
    this.variant = loaded.variant;
    this.contextLength = loaded.nCtx;
    this.kv = kv;
    this.instances = instances;
    this.cancelWhileRunning = loaded.variant === 'mt' || loaded.jspi || instances > 1;
    this.lastResult = null;
  }

  // n workers, each holding a contiguous range of layers and fetching only
  // its own byte ranges; worker 0 tokenizes, samples and generates.
  async #startSplit(src, bytes, options, { threads, kv, variant }, n, sourceSize = 0) {
    if (!splitAvailable())
      throw new Error('this model needs several WebAssembly instances, which share SharedArrayBuffer: serve the page ' +
        'with COOP/COEP headers (cross-origin isolation)');
    // An in-memory source is read by each instance through a Blob.
    if (src.kind === 'pull') src = { kind: 'blob', blob: new Blob([bytes]), name: src.name };
    this.#w = await makeWorker();
    this.#w.on((m) => this.#onMessage(m));
    this.#w.onError((msg) => this.#fail(this.#instanceDied(0, msg)));
    const cancelBuf = new SharedArrayBuffer(4);
    this.#cancel = new Int32Array(cancelBuf);
    const fail = (e) => {
      this.#fail(e.message);
      this.#dead = e;
      throw e;
    };
    // The plan reads only the header; a source whose size disagrees with its
    // preamble is refused as soon as the preamble is in.
    const planFor = (k) =>
      this.#request({ type: 'plan', source: src, variant, threads, instances: k, sourceSize }, {}, options.signal).catch(fail);
    let plan = await planFor(n);
    const fitsEach = (p) => Math.max(...p.stages.map((s) => s.bytes)) + p.head_size <= p.heap_free;
    // Split automatically: one instance more while the largest share does
    // not fit (the embedding and head sit on top of the first and last
    // instances' layers), up to one layer each.
    if (sourceSize)
      while (!fitsEach(plan) && n < plan.stages[n - 1].layers[1]) plan = await planFor(++n);
    this.#plan = plan;
    const name = src.name || 'the model';
    // Limits said up front, before the download: each instance's share of
    // wasm32 memory, and the device's memory where the browser tells it.
    const largest = Math.max(...plan.stages.map((s) => s.bytes));
    if (largest + plan.head_size > plan.heap_free)
      fail(new Error(`${name} does not fit ${n} instances: one would hold ${fmtBytes(largest)} of its ` +
        `${fmtBytes(plan.file_size)}, more than one wasm32 memory leaves for a model (${fmtBytes(plan.heap_free)}); ` +
        'use more instances'));
    const device = !isNode && globalThis.navigator && navigator.deviceMemory;
    const need = plan.file_size + n * plan.head_size;
    if (device && need > device * GiB)
      fail(new Error(`${name} needs about ${fmtBytes(need)} of memory across ${n} instances, and this ` +
        `device reports ${device} GiB (navigator.deviceMemory): it cannot run here`));
    this.#ctl = new Int32Array(new SharedArrayBuffer(16));
    const workers = [this.#w];
    for (let i = 1; i < n; i++) {
      const w = await makeWorker();
      w.on((m) => this.#onMessage(m));
      w.onError((msg) => this.#fail(this.#instanceDied(i, msg)));
      workers.push(w);
      this.#others.push(w);
    }
    const ports = [];
    for (let i = 0; i + 1 < n; i++) ports.push(await newChannel());
    const progress = plan.stages.map((s) => ({ loaded: 0, total: plan.head_size + s.bytes }));
    const onProgress = options.onProgress;
    const report = (i) => (m) => {
      progress[i].loaded = m.loaded;
      const loaded = progress.reduce((a, p) => a + p.loaded, 0);
      const total = progress.reduce((a, p) => a + p.total, 0);
      if (onProgress) onProgress({ phase: m.phase, loaded, total, instance: i });
    };
    const base = { type: 'load', source: src, variant, threads, nCtx: options.contextLength || 0, kv, stages: plan.stages };
    const stageOf = (i) => ({ index: i, count: n, layers: plan.stages[i].layers, ranges: plan.stages[i].ranges });
    const later = [];
    for (let i = 1; i < n; i++) {
      const chain = { ctl: this.#ctl.buffer, prev: ports[i - 1].port2, next: i + 1 < n ? ports[i].port1 : null };
      const transfer = [chain.prev, ...(chain.next ? [chain.next] : [])];
      later.push(this.#request({ ...base, stage: stageOf(i), chain }, { progress: report(i) }, options.signal, workers[i], transfer));
    }
    const first = this.#request(
      { ...base, stage: stageOf(0), cancel: cancelBuf, chain: { ctl: this.#ctl.buffer, next: ports[0].port1 } },
      { progress: report(0) },
      options.signal,
      workers[0],
      [ports[0].port1],
    );
    // Every load is awaited below; one that fails first must not count as
    // unhandled meanwhile.
    for (const p of [first, ...later]) p.catch(() => {});
    let loaded;
    try {
      const rest = await Promise.all(later);
      this.#w.post({ type: 'chain-ready' });
      loaded = await first;
      this.stages = [loaded, ...rest].map((l, i) => ({ layers: plan.stages[i].layers, bytes: l.bytes }));
      // Every instance loaded and checked its ranges: only now are they cached.
      if (src.kind === 'url' && src.cache) {
        if (onProgress) onProgress({ phase: 'caching', loaded: plan.file_size, total: plan.file_size });
        await Promise.all(workers.map((w) => this.#request({ type: 'cache' }, {}, null, w)));
      }
    } catch (e) {
      fail(e);
    }
    this.#describe(loaded, kv, n);
  }

  #plan = null;

  // An instance's worker died: worker 0, blocked waiting for the chain's
  // answer, hears it through the shared control words.
  #instanceDied(i, msg) {
    const s = this.#plan && this.#plan.stages[i];
    const who = s ? `instance ${i + 1} of ${this.#plan.stages.length} (layers ${s.layers[0]}-${s.layers[1] - 1})` : 'the model worker';
    if (this.#ctl && i > 0) {
      Atomics.store(this.#ctl, 3, i);
      Atomics.store(this.#ctl, 1, 2);
      Atomics.store(this.#ctl, 0, 1);
      Atomics.notify(this.#ctl, 0);
    }
    return `${who} stopped: ${msg}`;
  }

  #request(msg, extra = {}, signal = null, worker = this.#w, transfer = undefined) {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const h = { ...extra, resolve, reject };
      this.#handlers.set(id, h);
      this.#ref(true);
      if (signal) {
        if (signal.aborted) {
          this.#handlers.delete(id);
          return reject(abortError(signal));
        }
        const onAbort = () => {
          this.#cancelRequest(id);
          h.reject(abortError(signal));
        };
        signal.addEventListener('abort', onAbort, { once: true });
        h.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      worker.post({ ...msg, id }, transfer);
    });
  }

  #ref(on) {
    for (const w of [this.#w, ...this.#others]) if (w) on ? w.ref() : w.unref();
  }

  #terminate() {
    for (const w of [this.#w, ...this.#others]) if (w) w.terminate();
  }

  #cancelRequest(id) {
    if (this.#cancel && this.#running === id) Atomics.store(this.#cancel, 0, id);
    if (this.#w) this.#w.post({ type: 'cancel', id });
  }

  #settle(id) {
    const h = this.#handlers.get(id);
    this.#handlers.delete(id);
    if (h && h.cleanup) h.cleanup();
    if (this.#handlers.size === 0) this.#ref(false);
    return h;
  }

  #onMessage(m) {
    const h = this.#handlers.get(m.id);
    switch (m.type) {
      case 'fatal':
        return this.#fail(m.message);
      case 'start':
        this.#running = m.id;
        return;
      case 'progress':
        return h && h.progress && h.progress(m);
      case 'pull':
        return h && h.pull && h.pull(m);
      case 'piece':
        return h && h.piece && h.piece(m.text);
      case 'loaded':
        this.#settle(m.id);
        return h && h.resolve(m);
      case 'done':
        if (this.#running === m.id) this.#running = 0;
        this.#settle(m.id);
        return h && h.resolve(m.result);
      case 'error': {
        if (this.#running === m.id) this.#running = 0;
        this.#settle(m.id);
        const e = new Error(m.message);
        if (m.code) Object.assign(e, { code: m.code, size: m.size, budget: m.budget });
        return h && h.reject(e);
      }
    }
  }

  #fail(message) {
    if (this.#dead) return;
    this.#dead = new Error(message);
    for (const id of [...this.#handlers.keys()]) {
      const h = this.#settle(id);
      if (h) h.reject(this.#dead);
    }
    this.#terminate();
  }

  // Streams the answer to {messages} (chat) or {prompt} (plain completion;
  // chat: true wraps it as one user turn). Settings may sit in either
  // argument: max_new_tokens, temperature (0: greedy), top_k, top_p, min_p,
  // repetition_penalty, seed, greedy, stop, signal. The returned object is
  // an async iterable of text pieces; `result` resolves to the statistics.
  stream(request = {}, options = {}) {
    const all = { ...request, ...options };
    const req = {};
    for (const k of REQUEST_KEYS) if (all[k] !== undefined) req[k] = all[k];
    const signal = all.signal || null;
    const pieces = [];
    let wake = null;
    let finished = false;
    let failure = null;
    const notify = () => {
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    };
    let id = 0;
    // Once aborted, the stream ends with AbortError even if the worker had
    // already sent the rest (as a fetch body does).
    if (signal)
      signal.addEventListener(
        'abort',
        () => {
          failure = abortError(signal);
          pieces.length = 0;
          notify();
        },
        { once: true },
      );
    const result = this.#request({ type: 'generate', request: req }, { piece: (t) => (pieces.push(t), notify()) }, signal);
    id = this.#nextId - 1;
    result.then(
      (r) => {
        this.lastResult = r;
        finished = true;
        notify();
      },
      (e) => {
        failure = e;
        finished = true;
        notify();
      },
    );
    result.catch(() => {});
    const self = this;
    return {
      result,
      [Symbol.asyncIterator]() {
        return {
          async next() {
            while (!pieces.length && !finished && !failure) await new Promise((r) => (wake = r));
            if (failure) throw failure;
            if (pieces.length) return { value: pieces.shift(), done: false };
            return { value: undefined, done: true };
          },
          async return() {
            if (!finished) self.#cancelRequest(id);
            return { value: undefined, done: true };
          },
        };
      },
    };
  }

  // The whole answer as one string.
  async generate(request = {}, options = {}) {
    let text = '';
    for await (const piece of this.stream(request, options)) text += piece;
    return text;
  }

  // The exact text the model is prompted with (chat template applied).
  renderPrompt(request = {}) {
    const req = {};
    for (const k of REQUEST_KEYS) if (request[k] !== undefined) req[k] = request[k];
    return this.#request({ type: 'render', request: req });
  }

  // Frees the model and ends the worker.
  dispose() {
    if (this.#dead) return;
    this.#dead = new Error('this model was disposed');
    for (const id of [...this.#handlers.keys()]) {
      const h = this.#settle(id);
      if (h) h.reject(this.#dead);
    }
    this.#terminate();
  }
}

export default Cria;
