// Reading a model's bytes for worker.js: whole streams (a response, a
// Blob, a file in Node) and byte ranges of them, which a model split across
// instances fetches (HTTP Range, Blob.slice, fs reads), with Cache Storage
// holding each range of a split model. A classic script in browsers
// (importScripts: the global criaSources) and CommonJS in Node.
'use strict';

(function (root) {
  function criaSources({ nodeFs, MiB }) {
    async function* readerChunks(reader) {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    }

    async function* nodeChunks(stream) {
      for await (const c of stream) yield new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
    }

    // Bytes [offset, offset + size) of the source as Uint8Array chunks: an
    // HTTP Range request, a slice of a Blob, a read of a file in Node. A server
    // that ignores Range answers 200 with the whole file: the bytes before the
    // range are skipped as they stream past and the rest is never read.
    async function openRange(src, offset, size, cache) {
      if (src.kind === 'url') {
        const hit = cache ? await cache.match(rangeKey(src.url, offset, size)).catch(() => null) : null;
        if (hit) {
          const reader = hit.body.getReader();
          const cancel = () => reader.cancel().catch(() => {});
          return { chunks: within(readerChunks(reader), 0, size, cancel), cancel, cached: true };
        }
        let resp;
        try {
          resp = await fetch(src.url, { headers: { Range: `bytes=${offset}-${offset + size - 1}` } });
        } catch (e) {
          throw new Error(`could not download ${src.url}: ${e.message || e}`);
        }
        if (resp.status !== 206 && resp.status !== 200)
          throw new Error(`could not download ${src.url}: HTTP ${resp.status} ${resp.statusText}`.trim());
        const reader = resp.body.getReader();
        const cancel = () => reader.cancel().catch(() => {});
        const whole = resp.status === 200;
        return { chunks: within(readerChunks(reader), whole ? offset : 0, size, cancel), cancel, whole };
      }
      if (src.kind === 'blob') {
        const reader = src.blob.slice(offset, offset + size).stream().getReader();
        const cancel = () => reader.cancel().catch(() => {});
        return { chunks: within(readerChunks(reader), 0, size, cancel), cancel };
      }
      if (src.kind === 'path') {
        const stream = nodeFs.createReadStream(src.path, { start: offset, end: offset + size - 1, highWaterMark: 4 * MiB });
        const cancel = () => stream.destroy();
        return { chunks: within(nodeChunks(stream), 0, size, cancel), cancel };
      }
      throw new Error('a split model is read from a URL, a File or Blob, or (in Node) a path');
    }

    // The `size` bytes after the first `skip` of a chunk stream.
    async function* within(chunks, skip, size, cancel) {
      let pos = 0;
      const end = skip + size;
      for await (const c of chunks) {
        const a = Math.max(0, skip - pos), b = Math.min(c.length, end - pos);
        pos += c.length;
        if (b > a) yield c.subarray(a, b);
        if (pos >= end) {
          cancel();
          return;
        }
      }
    }

    // Cache Storage keeps a split model's ranges one entry each, under the
    // file's URL with the range in a query parameter of its own.
    function rangeKey(url, offset, size) {
      const u = new URL(url);
      u.searchParams.set('cria-bytes', `${offset}-${offset + size}`);
      return u.href;
    }

    async function openCache(src) {
      if (src.kind !== 'url' || !src.cache || typeof caches === 'undefined') return null;
      return caches.open(src.cache).catch(() => null);
    }

    async function readRange(src, offset, size, cache) {
      const out = new Uint8Array(size);
      let n = 0;
      const r = await openRange(src, offset, size, cache);
      for await (const c of r.chunks) {
        out.set(c.subarray(0, size - n), n);
        n += c.length;
      }
      if (n < size) throw new Error(`${src.name}: the file ended after ${offset + n} bytes (truncated)`);
      return out;
    }

    return { readerChunks, nodeChunks, openRange, readRange, rangeKey, openCache };
  }

  if (typeof module === 'object' && module.exports) module.exports = criaSources;
  else root.criaSources = criaSources;
})(this);
