// The demo page: pick or open a model, chat with it. Everything the model
// writes goes into the page as text (textContent), never as HTML.
import { Cria, threadsAvailable } from '../dist/cria.mjs';

const CACHE = 'cria-models';
const $ = (id) => document.getElementById(id);
const ui = {
  runtime: $('runtime'), select: $('model-select'), url: $('model-url'), loadUrl: $('load-url'), file: $('model-file'),
  progress: $('progress'), progressText: $('progress-text'), status: $('model-status'), system: $('system'),
  temperature: $('temperature'), topK: $('top-k'), topP: $('top-p'), maxTokens: $('max-tokens'), seed: $('seed'),
  error: $('error'), messages: $('messages'), form: $('composer'), input: $('input'), send: $('send'), stop: $('stop'),
  newChat: $('new-chat'), stats: $('stats'),
};

let llm = null;
let loading = null; // AbortController of a load in progress
let running = null; // AbortController of the answer being written
let history = []; // [{role, content}] of the conversation so far

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}
function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = '';
}

function mib(n) {
  return n >= 1 << 30 ? (n / (1 << 30)).toFixed(2) + ' GiB' : (n / (1 << 20)).toFixed(1) + ' MiB';
}

function setBusy() {
  const ready = !!llm && !loading;
  ui.input.disabled = !ready;
  ui.send.disabled = !ready || !!running;
  ui.stop.disabled = !running;
  ui.loadUrl.disabled = !!loading;
  ui.select.disabled = !!loading;
}

ui.runtime.textContent = threadsAvailable()
  ? `multi-threaded (${Math.min(navigator.hardwareConcurrency || 1, 8)} threads)`
  : 'single-threaded (page not cross-origin isolated)';

// ---- models ---------------------------------------------------------------

async function loadModel(source, label) {
  if (loading) loading.abort();
  if (running) running.abort();
  clearError();
  const ctl = new AbortController();
  loading = ctl;
  setBusy();
  ui.progress.hidden = false;
  ui.progress.value = 0;
  ui.progressText.textContent = 'starting…';
  const started = performance.now();
  try {
    const next = await Cria.load(source, {
      cache: typeof source === 'string' ? CACHE : false,
      signal: ctl.signal,
      onProgress: ({ phase, loaded, total }) => {
        if (total > 0) ui.progress.value = loaded / total;
        ui.progressText.textContent = total > 0 ? `${phase}: ${mib(loaded)} of ${mib(total)}` : `${phase}…`;
      },
    });
    if (loading !== ctl) return next.dispose();
    if (llm) llm.dispose();
    llm = next;
    const i = llm.info;
    const secs = ((performance.now() - started) / 1000).toFixed(1);
    ui.status.textContent =
      `${label}: ${i.architecture}, ${(i.parameters / 1e6).toFixed(1)}M parameters, ${mib(i.file_size)}, ` +
      `${llm.threads} thread${llm.threads > 1 ? 's' : ''}${llm.instances > 1 ? ` in each of ${llm.instances} instances` : ''}, ` +
      `context ${llm.contextLength} (loaded in ${secs} s)`;
    ui.progressText.textContent = '';
    ui.progress.hidden = true;
    if (typeof source === 'string') localStorage.setItem('cria.model', source);
    document.body.dataset.model = 'ready';
    document.body.dataset.loads = String(Number(document.body.dataset.loads || 0) + 1);
  } catch (e) {
    if (loading !== ctl) return;
    ui.progress.hidden = true;
    ui.progressText.textContent = '';
    showError(`Could not load ${label}: ${e.message || e}`);
    document.body.dataset.model = llm ? 'ready' : 'error';
  } finally {
    if (loading === ctl) loading = null;
    setBusy();
  }
}

async function initModels() {
  let models = [];
  try {
    models = await (await fetch('../dist/models/index.json')).json();
  } catch {
    showError('web/dist/models/index.json is missing: run ./scripts/build-web');
  }
  for (const m of models) {
    const opt = document.createElement('option');
    opt.value = new URL(m.url, location.href).href;
    opt.textContent = `${m.name} (${mib(m.size)})`;
    opt.title = m.about || '';
    ui.select.append(opt);
  }
  const custom = document.createElement('option');
  custom.value = '';
  custom.textContent = '— none —';
  ui.select.append(custom);
  // Reload: the last model again (from the browser's cache when it is
  // there, so this works offline); first visit: the bundled one.
  const last = localStorage.getItem('cria.model');
  const first = last || (models.length ? ui.select.options[0].value : '');
  if ([...ui.select.options].some((o) => o.value === first)) ui.select.value = first;
  else if (first) ui.url.value = first;
  if (first) loadModel(first, nameOf(first));
}

function nameOf(url) {
  try {
    return decodeURIComponent(new URL(url, location.href).pathname.split('/').pop()) || url;
  } catch {
    return url;
  }
}

ui.select.addEventListener('change', () => {
  if (ui.select.value) loadModel(ui.select.value, nameOf(ui.select.value));
});
ui.loadUrl.addEventListener('click', () => {
  const url = ui.url.value.trim();
  if (!url) return showError('Enter the URL of a .cria model file.');
  ui.select.value = '';
  loadModel(url, nameOf(url));
});
ui.url.addEventListener('keydown', (e) => {
  if (e.key === 'Enter') ui.loadUrl.click();
});
ui.file.addEventListener('change', () => {
  const f = ui.file.files[0];
  if (f) loadModel(f, f.name);
  ui.file.value = '';
});

// ---- chat -----------------------------------------------------------------

function addMessage(role, text) {
  const li = document.createElement('li');
  li.className = role;
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : 'Assistant';
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  li.append(who, body);
  ui.messages.append(li);
  li.scrollIntoView({ block: 'end' });
  return { li, body };
}

function settings() {
  const num = (el, def) => (el.value === '' || Number.isNaN(Number(el.value)) ? def : Number(el.value));
  const temperature = num(ui.temperature, 0.7);
  const s = { max_new_tokens: Math.max(1, Math.round(num(ui.maxTokens, 256))), seed: Math.max(0, Math.round(num(ui.seed, 0))) };
  if (temperature <= 0) s.greedy = true;
  else Object.assign(s, { temperature, top_k: Math.max(0, Math.round(num(ui.topK, 40))), top_p: Math.min(1, Math.max(0.01, num(ui.topP, 0.95))) });
  return s;
}

async function send(text) {
  if (!llm || running) return;
  clearError();
  const system = ui.system.value.trim();
  const messages = [...(system ? [{ role: 'system', content: system }] : []), ...history, { role: 'user', content: text }];
  addMessage('user', text);
  const { li, body } = addMessage('assistant', '');
  li.classList.add('streaming');
  const ctl = new AbortController();
  running = ctl;
  setBusy();
  ui.stats.textContent = 'thinking…';
  const t0 = performance.now();
  let first = 0;
  let pieces = 0;
  let answer = '';
  let stopped = false;
  // A long conversation drops its oldest tokens rather than fail.
  const stream = llm.stream({ messages, truncate: true }, { ...settings(), signal: ctl.signal });
  try {
    for await (const piece of stream) {
      if (!first) first = performance.now();
      pieces++;
      answer += piece;
      body.textContent = answer;
      const dt = (performance.now() - first) / 1000;
      ui.stats.textContent = `${pieces} pieces · ${dt > 0 ? (pieces / dt).toFixed(1) : '…'} tok/s`;
      li.scrollIntoView({ block: 'end' });
    }
    const r = await stream.result;
    const tps = r.decode_seconds > 0 ? r.generated_tokens / r.decode_seconds : 0;
    ui.stats.textContent =
      `${r.generated_tokens} tokens · ${tps.toFixed(1)} tok/s · first token ${r.time_to_first_token.toFixed(2)} s` +
      ` · prompt ${r.prompt_tokens} tokens` + (r.reused_prompt_tokens ? ` (${r.reused_prompt_tokens} cached)` : '') +
      (r.stop_reason === 'max_tokens' ? ' · max tokens reached' : '');
  } catch (e) {
    if (e && e.name === 'AbortError') {
      stopped = true;
      const secs = first ? ((performance.now() - first) / 1000).toFixed(1) : '0';
      ui.stats.textContent = `stopped after ${pieces} pieces (${secs} s)` + (first ? ` · first token ${((first - t0) / 1000).toFixed(2)} s` : '');
    } else {
      showError(`Generation failed: ${e.message || e}`);
    }
  } finally {
    li.classList.remove('streaming');
    if (stopped) li.classList.add('stopped');
    running = null;
    setBusy();
  }
  history.push({ role: 'user', content: text }, { role: 'assistant', content: answer });
  document.body.dataset.answers = String(Number(document.body.dataset.answers || 0) + 1);
}

ui.form.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.input.value.trim();
  if (!text) return;
  ui.input.value = '';
  send(text);
});
ui.input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    ui.form.requestSubmit();
  }
});
ui.stop.addEventListener('click', () => running && running.abort());
ui.newChat.addEventListener('click', () => {
  if (running) running.abort();
  history = [];
  ui.messages.replaceChildren();
  ui.stats.textContent = '';
  clearError();
});

// Static files for offline use (the model itself is in Cache Storage).
if ('serviceWorker' in navigator && location.protocol !== 'file:') {
  navigator.serviceWorker.register('../sw.js', { scope: '../' }).catch(() => {});
}

setBusy();
initModels();
