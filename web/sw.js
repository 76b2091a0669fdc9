// Service worker of the demo: keeps the page and the library (HTML, JS,
// wasm) for offline use, network first so a rebuilt library is picked up.
// Model files are left alone: the library keeps them in Cache Storage.
const STATIC = 'cria-static-v1';

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== self.location.origin || url.pathname.endsWith('.cria')) return;
  e.respondWith(
    (async () => {
      const cache = await caches.open(STATIC);
      try {
        const resp = await fetch(e.request);
        if (resp.ok) await cache.put(e.request, resp.clone());
        return resp;
      } catch (err) {
        const hit = await cache.match(e.request, { ignoreSearch: true });
        if (hit) return hit;
        throw err;
      }
    })(),
  );
});
