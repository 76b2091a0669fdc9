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

export class Cria {
  #w;
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
    this.#w = await makeWorker();
    this.#w.on((m) => this.#onMessage(m));
    this.#w.onError((msg) => this.#fail(msg));
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
    this.info = loaded.info;
    this.threads = loaded.threads;
    this.variant = loaded.variant;
    this.contextLength = loaded.nCtx;
    this.kv = kv;
    this.cancelWhileRunning = loaded.variant === 'mt' || loaded.jspi;
    this.lastResult = null;
  }

  #request(msg, extra = {}, signal = null) {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const h = { ...extra, resolve, reject };
      this.#handlers.set(id, h);
      this.#w.ref();
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
      this.#w.post({ ...msg, id });
    });
  }

  #cancelRequest(id) {
    if (this.#cancel && this.#running === id) Atomics.store(this.#cancel, 0, id);
    if (this.#w) this.#w.post({ type: 'cancel', id });
  }

  #settle(id) {
    const h = this.#handlers.get(id);
    this.#handlers.delete(id);
    if (h && h.cleanup) h.cleanup();
    if (this.#handlers.size === 0) this.#w.unref();
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
      case 'error':
        if (this.#running === m.id) this.#running = 0;
        this.#settle(m.id);
        return h && h.reject(new Error(m.message));
    }
  }

  #fail(message) {
    if (this.#dead) return;
    this.#dead = new Error(message);
    for (const id of [...this.#handlers.keys()]) {
      const h = this.#settle(id);
      if (h) h.reject(this.#dead);
    }
    if (this.#w) this.#w.terminate();
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
    this.#w.terminate();
  }
}

export default Cria;
