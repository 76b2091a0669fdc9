// A small static server for web/: the demo at /demo/, the library at /dist/.
// Binds 127.0.0.1 only. It sends the cross-origin isolation headers (COOP +
// COEP) that SharedArrayBuffer, and so the threaded build, needs;
// --no-isolation leaves them out (the page then runs single-threaded).
// It answers single HTTP Range requests (206), which a model split across
// instances uses to fetch each instance's own bytes; --no-ranges ignores
// them (200 with the whole file), as some servers do.
//   web/serve [--port N] [--no-isolation] [--no-ranges]
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.dirname(fileURLToPath(import.meta.url));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.cjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ts': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

// Starts the server; resolves to {server, port, url, close()}. Port 0 picks a
// free one (tests and benchmarks).
export function startServer({ port = 8080, isolation = true, root = ROOT, log = false, ranges = true } = {}) {
  const server = http.createServer((req, res) => {
    const headers = { 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' };
    if (isolation) {
      headers['cross-origin-opener-policy'] = 'same-origin';
      headers['cross-origin-embedder-policy'] = 'require-corp';
      headers['cross-origin-resource-policy'] = 'same-origin';
    }
    const send = (status, body, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { ...headers, 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed\n');
    let pathname;
    try {
      pathname = decodeURIComponent(new URL(req.url, 'http://localhost').pathname);
    } catch {
      return send(400, 'bad request\n');
    }
    if (pathname === '/') {
      res.writeHead(302, { ...headers, location: '/demo/' });
      return res.end();
    }
    const file = path.join(root, path.normalize(pathname));
    if (!file.startsWith(root + path.sep) && file !== root) return send(403, 'forbidden\n');
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) {
        if (!pathname.endsWith('/')) {
          res.writeHead(301, { ...headers, location: pathname + '/' });
          return res.end();
        }
        return serveFile(path.join(file, 'index.html'));
      }
      serveFile(file);
    });
    function serveFile(f) {
      fs.stat(f, (err, st) => {
        if (err || !st.isFile()) return send(404, `not found: ${pathname}\n`);
        const type = TYPES[path.extname(f)] || 'application/octet-stream';
        const range = ranges && /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
        if (range && (range[1] || range[2])) {
          // bytes=a-b, bytes=a- or bytes=-n (the last n bytes).
          let a = range[1] ? Number(range[1]) : Math.max(0, st.size - Number(range[2]));
          let b = range[1] && range[2] ? Math.min(Number(range[2]), st.size - 1) : st.size - 1;
          if (a > b || a >= st.size) {
            res.writeHead(416, { ...headers, 'content-range': `bytes */${st.size}` });
            return res.end();
          }
          res.writeHead(206, {
            ...headers, 'content-type': type, 'content-length': b - a + 1, 'content-range': `bytes ${a}-${b}/${st.size}`,
            'accept-ranges': 'bytes',
          });
          if (req.method === 'HEAD') return res.end();
          return fs.createReadStream(f, { start: a, end: b }).pipe(res);
        }
        res.writeHead(200, { ...headers, 'content-type': type, 'content-length': st.size, ...(ranges ? { 'accept-ranges': 'bytes' } : {}) });
        if (req.method === 'HEAD') return res.end();
        fs.createReadStream(f).pipe(res);
      });
    }
    if (log) res.on('finish', () => console.log(`${res.statusCode} ${req.method} ${req.url}${req.headers.range ? ' ' + req.headers.range : ''}`));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const p = server.address().port;
      resolve({ server, port: p, url: `http://127.0.0.1:${p}`, close: () => new Promise((r) => server.close(r)) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2);
  let port = 8080;
  let isolation = true;
  let ranges = true;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port' && i + 1 < args.length) port = Number(args[++i]);
    else if (args[i].startsWith('--port=')) port = Number(args[i].slice(7));
    else if (args[i] === '--no-isolation') isolation = false;
    else if (args[i] === '--no-ranges') ranges = false;
    else if (args[i] === '--log') continue;
    else {
      console.error('usage: web/serve [--port N] [--no-isolation] [--no-ranges] [--log]');
      process.exit(2);
    }
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('web/serve: --port must be 0..65535');
    process.exit(2);
  }
  if (!fs.existsSync(path.join(ROOT, 'dist', 'cria.mjs')))
    console.error('web/serve: web/dist/ is missing; run ./scripts/build-web first');
  const s = await startServer({ port, isolation, ranges, log: args.includes('--log') }).catch((e) => {
    console.error(`web/serve: ${e.message}`);
    process.exit(1);
  });
  console.log(`cria demo: ${s.url}/demo/  (${isolation ? 'cross-origin isolated: threads on' : 'no isolation: single-threaded'})`);
}
