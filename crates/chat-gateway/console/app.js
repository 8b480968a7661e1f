// chat-gateway operator console: a single-page app over the public API.
// Plain ES module, no build step, no third-party code. Hash routes:
//   #/overview  #/conversations?…  #/conversations/{id}  #/feed  #/webhooks
// The API key (when the gateway has keys) lives in this tab's sessionStorage
// and travels only in the Authorization header, never in a URL.

const KEY_STORE = 'chatgw.console.key';
const EVENT_TYPES = ['session.opened', 'session.updated', 'session.closed', 'session.reopened',
  'session.transferred', 'message.created', 'message.updated', 'customer.erased'];
const FEED_KEEP = 500;

// ---------------------------------------------------------------- helpers

/** Builds an element: h('a', {href: '#'}, 'text', child). Text is never parsed as HTML. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

/** An SVG element with presentation attributes (CSP forbids inline styles). */
function s(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** A random id for Idempotency-Key (crypto.randomUUID needs a secure context). */
function newKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

function fmtTime(t) {
  if (!t) return '—';
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toLocaleString(undefined, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

function fmtSecs(v) {
  if (v === null || v === undefined) return '—';
  if (v < 90) return `${Math.round(v)} s`;
  if (v < 5400) return `${Math.round(v / 60)} min`;
  return `${(v / 3600).toFixed(1)} h`;
}

/** RFC 3339 from a datetime-local input's value (read in the browser's zone). */
function localToIso(v) {
  if (!v) return null;
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function isoToLocalInput(d) {
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function badge(text, cls) {
  return h('span', { class: `badge ${cls || text}`, dataset: { badge: text } }, text);
}

function personName(p) {
  if (!p) return '—';
  return p.name ? `${p.name} (${p.external_id ?? '?'})` : (p.external_id ?? '—');
}

// ---------------------------------------------------------------- API client

/** An error answer from the gateway, with the contract's `error.code`. */
class ApiError extends Error {
  constructor(status, code, message, requestId) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId;
  }
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Calls the API; resolves with the parsed JSON body, rejects with ApiError. */
async function api(method, path, { body, idempotencyKey, key } = {}) {
  const headers = { Accept: 'application/json', ...authHeaders() };
  if (key !== undefined) {
    delete headers.Authorization;
    if (key) headers.Authorization = `Bearer ${key}`;
  }
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (idempotencyKey) headers['Idempotency-Key'] = idempotencyKey;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(0, 'network_error', `The gateway could not be reached (${e.message}).`, null);
  }
  let json = null;
  const text = await resp.text();
  if (text) {
    try { json = JSON.parse(text); } catch { json = null; }
  }
  if (!resp.ok) {
    const err = json && json.error ? json.error : {};
    const code = err.code || (resp.status === 405 ? 'method_not_allowed' : `http_${resp.status}`);
    throw new ApiError(resp.status, code, err.message || resp.statusText || 'Request failed.', err.request_id || resp.headers.get('x-request-id'));
  }
  return json;
}

/** Whether an error means the endpoint is not offered by this gateway build. */
function isMissingEndpoint(e) {
  return e instanceof ApiError && (e.status === 405 || (e.status === 404 && /route/i.test(e.message)));
}

/** The inline box for a failed call: `code: message`, or a notice for a missing endpoint. */
function errorBox(e, what) {
  if (isMissingEndpoint(e)) {
    return h('div', { class: 'notice', role: 'status', dataset: { errorCode: e.code } },
      `${what || 'This feature'} is not available on this gateway (`, h('code', {}, e.code), `: ${e.message})`);
  }
  if (e instanceof ApiError) {
    return h('div', { class: 'error', role: 'alert', dataset: { errorCode: e.code } },
      h('code', {}, e.code), `: ${e.message}`,
      e.requestId ? h('span', { class: 'small muted' }, ` (request ${e.requestId})`) : null);
  }
  return h('div', { class: 'error', role: 'alert' }, String(e && e.message ? e.message : e));
}

/** Reads every page of a list endpoint (bounded). */
async function listAll(path, max = 2000) {
  const out = [];
  let cursor = null;
  do {
    const sep = path.includes('?') ? '&' : '?';
    const page = await api('GET', `${path}${sep}limit=500${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...(page.data || []));
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

// ---------------------------------------------------------------- accounts cache

let accountsCache = null;
async function accounts(refresh = false) {
  if (!accountsCache || refresh) {
    const body = await api('GET', '/v1/accounts');
    accountsCache = body.data || [];
  }
  return accountsCache;
}

// ---------------------------------------------------------------- event stream

/**
 * One SSE reader for the whole app: fetch with the Authorization header,
 * parse `text/event-stream` from the body, resume from the last seq on
 * reconnect. Pages subscribe; the feed page reads the kept history.
 */
const stream = {
  listeners: new Set(),
  history: [],
  lastSeq: null,
  controller: null,
  state: 'idle',
  statusListeners: new Set(),

  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); },
  onStatus(fn) { this.statusListeners.add(fn); return () => this.statusListeners.delete(fn); },
  setState(st) { this.state = st; for (const fn of this.statusListeners) fn(st); },

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.loop(this.controller.signal);
  },

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    this.setState('idle');
  },

  async loop(signal) {
    let delay = 1000;
    while (!signal.aborted) {
      try {
        const headers = { Accept: 'text/event-stream', ...authHeaders() };
        if (this.lastSeq) headers['Last-Event-ID'] = this.lastSeq;
        const resp = await fetch('/v1/events/stream', { headers, signal, cache: 'no-store' });
        if (!resp.ok || !resp.body) {
          this.setState(`error ${resp.status}`);
          if (resp.status === 401) { sessionExpired(); return; }
          if (resp.status === 410) this.lastSeq = null; // retention passed: start from now
        } else {
          this.setState('live');
          delay = 1000;
          await this.read(resp.body, signal);
          this.setState('reconnecting');
        }
      } catch (e) {
        if (signal.aborted) return;
        this.setState('reconnecting');
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 15000);
    }
  },

  async read(body, signal) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    let ev = { data: [] };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || signal.aborted) return;
        buf += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (ev.data.length) this.dispatch(ev);
            ev = { data: [] };
            continue;
          }
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          let val = colon < 0 ? '' : line.slice(colon + 1);
          if (val.startsWith(' ')) val = val.slice(1);
          if (field === 'data') ev.data.push(val);
          else if (field === 'id') ev.id = val;
          else if (field === 'event') ev.event = val;
        }
      }
    } finally {
      reader.releaseLock();
    }
  },

  dispatch(raw) {
    let event;
    try { event = JSON.parse(raw.data.join('\n')); } catch { return; }
    if (!event || typeof event !== 'object') return;
    if (raw.id) this.lastSeq = raw.id;
    else if (event.seq) this.lastSeq = String(event.seq);
    this.history.push(event);
    if (this.history.length > FEED_KEEP) this.history.splice(0, this.history.length - FEED_KEEP);
    for (const fn of [...this.listeners]) {
      try { fn(event); } catch (e) { /* a page's handler must not stop the stream */ }
    }
  },
};

// ---------------------------------------------------------------- auth and shell

let authMode = null; // 'none' (no keys configured) or 'key'

function sessionExpired() {
  if (authMode !== 'key') return;
  sessionStorage.removeItem(KEY_STORE);
  stream.stop();
  showLogin('Your key was refused; enter it again.');
}

/** Probes an authenticated endpoint: 200 without a key means no keys are configured. */
async function boot() {
  const stored = sessionStorage.getItem(KEY_STORE);
  try {
    await api('GET', '/v1/accounts', { key: stored || '' });
    authMode = stored ? 'key' : 'none';
    startApp();
  } catch (e) {
    if (e.status === 401) {
      sessionStorage.removeItem(KEY_STORE);
      authMode = 'key';
      showLogin(stored ? 'The stored key was refused.' : null);
    } else if (e.status === 403 && stored) {
      authMode = 'key';
      startApp();
    } else {
      const main = document.getElementById('main');
      main.replaceChildren(h('h1', {}, 'chat-gateway console'), errorBox(e),
        h('button', { onclick: boot }, 'Try again'));
    }
  }
}

function showLogin(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').replaceChildren();
  const main = document.getElementById('main');
  const input = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const out = h('div', { id: 'login-result' }, message ? h('div', { class: 'notice', role: 'status' }, message) : null);
  const btn = h('button', { class: 'primary', type: 'submit', id: 'login-submit' }, 'Open console');
  const form = h('form', {
    class: 'panel login', id: 'login',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      btn.disabled = true;
      out.replaceChildren(h('p', { class: 'muted' }, 'Checking…'));
      try {
        await api('GET', '/v1/accounts', { key });
        sessionStorage.setItem(KEY_STORE, key);
        authMode = 'key';
        startApp();
      } catch (e) {
        out.replaceChildren(errorBox(e));
        btn.disabled = false;
        input.select();
      }
    },
  },
  h('h1', {}, 'chat-gateway console'),
  h('p', { class: 'muted' }, 'This gateway requires an API key. It is kept in this browser tab only (sessionStorage) and sent as an Authorization header.'),
  h('label', { for: 'api-key' }, 'API key', input),
  h('div', { class: 'row' }, btn),
  out);
  main.replaceChildren(form);
  input.focus();
}

function startApp() {
  document.getElementById('nav').hidden = false;
  const who = document.getElementById('who');
  const live = h('span', { id: 'stream-state', class: 'badge' }, 'stream: connecting');
  stream.statusListeners.clear();
  stream.onStatus((st) => { live.textContent = `stream: ${st}`; live.className = `badge ${st === 'live' ? 'running' : 'pending'}`; });
  who.replaceChildren(live, authMode === 'key'
    ? h('span', {}, 'key in this tab ', h('button', { id: 'sign-out', onclick: signOut }, 'Sign out'))
    : h('span', { title: 'The gateway has no API keys configured (loopback only).' }, 'no key needed'));
  stream.start();
  if (!location.hash || location.hash === '#' || location.hash === '#/login') location.hash = '#/overview';
  route();
}

function signOut() {
  sessionStorage.removeItem(KEY_STORE);
  stream.stop();
  accountsCache = null;
  showLogin('Signed out.');
}

// ---------------------------------------------------------------- router

let cleanup = [];
let focusAfterRoute = null; // id of the control to focus again after a filter re-renders the page
function onLeave(fn) { cleanup.push(fn); }

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/overview';
  const [path, query] = raw.split('?');
  return { parts: path.split('/').filter(Boolean).map(decodeURIComponent), params: new URLSearchParams(query || '') };
}

async function route() {
  if (!authMode) return;
  if (authMode === 'key' && !sessionStorage.getItem(KEY_STORE)) { showLogin(null); return; }
  for (const fn of cleanup) { try { fn(); } catch { /* ignore */ } }
  cleanup = [];
  const { parts, params } = parseHash();
  const page = parts[0] || 'overview';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const main = document.getElementById('main');
  main.replaceChildren();
  main.dataset.page = page;
  try {
    if (page === 'overview') await overviewPage(main);
    else if (page === 'conversations' && parts[1]) await conversationPage(main, parts[1]);
    else if (page === 'conversations') await conversationsPage(main, params);
    else if (page === 'feed') feedPage(main);
    else if (page === 'webhooks') await webhooksPage(main);
    else main.replaceChildren(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/overview' }, 'Back to the overview')));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) sessionExpired();
    else main.append(errorBox(e));
  }
}

window.addEventListener('hashchange', route);

// ---------------------------------------------------------------- overview

async function overviewPage(main) {
  document.title = 'Overview · chat-gateway';
  const list = h('div', { class: 'grid', id: 'accounts' });
  const charts = h('section', { id: 'stats', 'aria-label': 'Statistics' });
  main.append(h('h1', {}, 'Overview'), h('h2', {}, 'Accounts'), list, h('h2', {}, 'Activity'), charts);

  const open = new Set();
  const draw = async () => {
    let accs;
    try { accs = await accounts(true); } catch (e) { list.replaceChildren(errorBox(e)); return; }
    // Only the sync part changes: a backfill form being filled in, and the
    // keyboard focus, stay where they are.
    for (const acc of accs) {
      const card = list.querySelector(`[data-account="${CSS.escape(acc.name)}"]`);
      const fresh = accountCard(acc, open);
      if (card) card.querySelector('.sync').replaceWith(fresh.querySelector('.sync'));
      else list.append(fresh);
    }
    if (!accs.length) list.replaceChildren(h('p', { class: 'muted' }, 'No accounts are configured.'));
  };
  await draw();
  const timer = setInterval(draw, 4000);
  onLeave(() => clearInterval(timer));
  statsCharts(charts);
}

function accountCard(acc, open) {
  const caps = acc.capabilities || [];
  const sync = acc.sync || {};
  const bf = sync.backfill;
  const syncBox = h('div', { class: 'sync' },
    h('dl', { class: 'kv' },
      h('dt', {}, 'sync'), h('dd', {}, badge(sync.state || 'unknown')),
      h('dt', {}, 'lag'), h('dd', {}, sync.lag_seconds === null || sync.lag_seconds === undefined ? '—' : fmtSecs(sync.lag_seconds)),
      h('dt', {}, 'last success'), h('dd', {}, fmtTime(sync.last_success_at)),
      h('dt', {}, 'last error'), h('dd', { class: sync.last_error ? 'small' : '' },
        sync.last_error ? [h('span', { class: 'badge error' }, fmtTime(sync.last_error.at)), ' ', sync.last_error.message] : '—')),
    bf ? h('div', { class: 'backfill', dataset: { state: bf.state } },
      h('div', { class: 'row spread small' },
        h('span', {}, 'backfill ', badge(bf.state)),
        h('span', { class: 'muted' }, `${fmtTime(bf.from)} → ${fmtTime(bf.to)}`)),
      h('div', { class: `bar ${bf.state}`, role: 'progressbar', 'aria-label': `backfill ${bf.state}`, 'aria-valuetext': `${bf.fetched} messages fetched` }, h('span')),
      h('div', { class: 'small muted' }, `${bf.fetched ?? 0} messages fetched`, bf.error ? ` · error: ${bf.error}` : '')) : null);

  const now = new Date();
  const from = h('input', { type: 'datetime-local', name: 'from', required: true, value: isoToLocalInput(new Date(now.getTime() - 30 * 86400e3)) });
  const to = h('input', { type: 'datetime-local', name: 'to', value: isoToLocalInput(now) });
  const customers = acc.provider === 'ccmessaging'
    ? h('label', {}, 'customer ids (comma separated, optional)', h('input', { name: 'customers', type: 'text', placeholder: '1659490221026188522' }))
    : null;
  const out = h('div');
  const idem = { key: newKey(), body: '' };
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Start backfill');
  const form = h('form', {
    class: 'filters',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { from: localToIso(from.value) };
      if (to.value) body.to = localToIso(to.value);
      if (customers) {
        const ids = customers.querySelector('input').value.split(',').map((x) => x.trim()).filter(Boolean);
        if (ids.length) body.customer_ids = ids;
      }
      const sig = JSON.stringify(body);
      if (sig !== idem.body) { idem.key = newKey(); idem.body = sig; }
      submit.disabled = true;
      try {
        await api('POST', `/v1/accounts/${encodeURIComponent(acc.name)}/sync`, { body, idempotencyKey: idem.key });
        out.replaceChildren(h('div', { class: 'ok', role: 'status' }, 'Backfill started.'));
        idem.body = '';
      } catch (e) { out.replaceChildren(errorBox(e, 'Backfill')); }
      submit.disabled = false;
    },
  }, h('label', {}, 'from', from), h('label', {}, 'to', to), customers, submit);
  const details = h('details', { ontoggle: () => { if (details.open) open.add(acc.name); else open.delete(acc.name); } },
    h('summary', {}, 'Backfill history…'), form, out);
  if (open.has(acc.name)) details.open = true;

  return h('article', { class: 'panel', dataset: { account: acc.name, provider: acc.provider } },
    h('div', { class: 'row spread' }, h('h3', {}, acc.name), h('span', { class: 'badge' }, acc.provider)),
    h('div', {}, caps.map((c) => h('span', { class: 'chip' }, c))),
    h('div', { class: 'small' }, h('a', { href: `#/conversations?account=${encodeURIComponent(acc.name)}` }, 'Conversations →')),
    syncBox,
    caps.includes('history') ? details : null);
}

// ---------------------------------------------------------------- charts

function statsCharts(box) {
  let interval = 'day';
  const accSel = h('select', { id: 'stats-account', 'aria-label': 'Account' }, h('option', { value: '' }, 'all accounts'));
  const dayBtn = h('button', { type: 'button', 'aria-pressed': 'true', onclick: () => { interval = 'day'; load(); } }, 'Per day (7 days)');
  const hourBtn = h('button', { type: 'button', 'aria-pressed': 'false', onclick: () => { interval = 'hour'; load(); } }, 'Per hour (48 h)');
  const body = h('div');
  box.append(h('div', { class: 'row' }, dayBtn, hourBtn, accSel), body);
  accounts().then((accs) => { for (const a of accs) accSel.append(h('option', { value: a.name }, a.name)); }).catch(() => {});
  accSel.addEventListener('change', () => load());

  async function load() {
    dayBtn.setAttribute('aria-pressed', String(interval === 'day'));
    hourBtn.setAttribute('aria-pressed', String(interval === 'hour'));
    const q = new URLSearchParams({ interval, tz: Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC' });
    if (interval === 'hour') q.set('from', new Date(Date.now() - 47 * 3600e3).toISOString());
    if (accSel.value) q.set('account', accSel.value);
    body.replaceChildren(h('p', { class: 'muted' }, 'Loading statistics…'));
    let rows;
    try {
      rows = (await api('GET', `/v1/stats?${q}`)).data || [];
    } catch (e) {
      if (e.status === 400 && q.get('tz') !== 'UTC') {
        q.set('tz', 'UTC');
        try { rows = (await api('GET', `/v1/stats?${q}`)).data || []; } catch (e2) { body.replaceChildren(errorBox(e2, 'Statistics (/v1/stats)')); return; }
      } else { body.replaceChildren(errorBox(e, 'Statistics (/v1/stats)')); return; }
    }
    if (!rows.length) { body.replaceChildren(h('p', { class: 'muted' }, 'No activity in this period.')); return; }
    const buckets = [...new Set(rows.map((r) => r.bucket))].sort();
    const accts = [...new Set(rows.map((r) => r.account))].sort();
    const sum = (b, f) => rows.filter((r) => r.bucket === b).reduce((a, r) => a + (r[f] || 0), 0);
    const label = (b) => {
      const d = new Date(b);
      return interval === 'day' ? d.toLocaleDateString(undefined, { month: '2-digit', day: '2-digit' }) : `${d.toLocaleDateString(undefined, { day: '2-digit' })} ${d.toLocaleTimeString(undefined, { hour: '2-digit', hourCycle: 'h23' })}h`;
    };
    const volume = barChart(buckets.map(label), [
      { name: 'messages in', values: buckets.map((b) => sum(b, 'messages_inbound')) },
      { name: 'messages out', values: buckets.map((b) => sum(b, 'messages_outbound')) },
    ]);
    const medians = lineChart(buckets.map(label), accts.map((a) => ({
      name: a,
      values: buckets.map((b) => {
        const r = rows.find((x) => x.bucket === b && x.account === a);
        return r && r.first_response_secs && r.first_response_secs.median !== null ? r.first_response_secs.median : null;
      }),
    })));
    body.replaceChildren(h('div', { class: 'charts' },
      h('figure', { class: 'panel', id: 'chart-volume' }, h('h3', {}, `Messages per ${interval}`), volume),
      h('figure', { class: 'panel', id: 'chart-first-response' }, h('h3', {}, `Median first response per ${interval}, by account`), medians)));
  }
  load();
}

const COLORS = ['#2457c5', '#f08c2e', '#12a37a', '#9b4dca', '#d04060'];

function axes(svg, W, H, P, max, labels, fmt) {
  for (let i = 0; i <= 4; i++) {
    const y = P.t + (H - P.t - P.b) * (1 - i / 4);
    svg.append(s('line', { x1: P.l, x2: W - P.r, y1: y, y2: y, stroke: '#e4e7ec' }));
    svg.append(s('text', { x: P.l - 4, y: y + 3, 'text-anchor': 'end' }, fmt(max * i / 4)));
  }
  const step = Math.max(1, Math.ceil(labels.length / 12));
  labels.forEach((l, i) => {
    if (i % step) return;
    const x = P.l + (W - P.l - P.r) * (i + 0.5) / labels.length;
    svg.append(s('text', { x, y: H - 6, 'text-anchor': 'middle' }, l));
  });
}

function legend(series) {
  return h('div', { class: 'legend' }, series.map((se, i) => h('span', {}, h('i', { class: `c${i % 5}` }), se.name)));
}

function barChart(labels, series) {
  const W = 560, H = 220, P = { l: 40, r: 8, t: 10, b: 22 };
  const max = Math.max(1, ...series.flatMap((x) => x.values));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': series.map((x) => `${x.name}: ${x.values.join(', ')}`).join('; ') });
  axes(svg, W, H, P, max, labels, (v) => String(Math.round(v)));
  const slot = (W - P.l - P.r) / labels.length;
  const bw = Math.max(1, (slot * 0.8) / series.length);
  series.forEach((se, si) => se.values.forEach((v, i) => {
    const hgt = (H - P.t - P.b) * v / max;
    const rect = s('rect', { x: P.l + slot * i + slot * 0.1 + bw * si, y: H - P.b - hgt, width: bw, height: hgt, fill: COLORS[si % 5], rx: 1 });
    rect.append(s('title', {}, `${labels[i]} ${se.name}: ${v}`));
    svg.append(rect);
  }));
  return h('div', {}, svg, legend(series));
}

function lineChart(labels, series) {
  const W = 560, H = 220, P = { l: 48, r: 8, t: 10, b: 22 };
  const max = Math.max(1, ...series.flatMap((x) => x.values.filter((v) => v !== null)));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': 'median first response in seconds per bucket and account' });
  axes(svg, W, H, P, max, labels, fmtSecs);
  const x = (i) => P.l + (W - P.l - P.r) * (i + 0.5) / labels.length;
  const y = (v) => H - P.b - (H - P.t - P.b) * v / max;
  series.forEach((se, si) => {
    let d = '';
    se.values.forEach((v, i) => {
      if (v === null) return;
      d += `${d && se.values[i - 1] !== null ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      const dot = s('circle', { cx: x(i), cy: y(v), r: 3, fill: COLORS[si % 5] });
      dot.append(s('title', {}, `${labels[i]} ${se.name}: ${fmtSecs(v)}`));
      svg.append(dot);
    });
    if (d) svg.append(s('path', { d, fill: 'none', stroke: COLORS[si % 5], 'stroke-width': 2 }));
  });
  return h('div', {}, svg, legend(series));
}

// ---------------------------------------------------------------- conversations list

const SESSION_FILTERS = ['account', 'provider', 'status', 'channel', 'agent_id', 'customer_id'];

function sessionMatches(sess, params) {
  for (const f of SESSION_FILTERS) {
    const want = params.get(f);
    if (!want) continue;
    const have = f === 'agent_id' ? sess.agent && sess.agent.external_id
      : f === 'customer_id' ? sess.customer && sess.customer.external_id : sess[f];
    if (String(have ?? '') !== want) return false;
  }
  return true;
}

function sessionRow(sess) {
  return h('tr', { dataset: { sessionId: sess.id, provider: sess.provider, status: sess.status } },
    h('td', {}, badge(sess.status)),
    h('td', {}, h('a', { href: `#/conversations/${encodeURIComponent(sess.id)}`, class: 'open-session' }, personName(sess.customer))),
    h('td', {}, sess.provider, h('div', { class: 'small muted' }, sess.account)),
    h('td', { class: 'hide-narrow' }, personName(sess.agent)),
    h('td', { class: 'hide-narrow' }, sess.channel ?? '—'),
    h('td', { class: 'hide-narrow' }, String(sess.message_count ?? 0)),
    h('td', {}, fmtTime(sess.created_at), h('div', { class: 'small muted hide-narrow' }, `last: ${fmtTime(sess.last_message_at)}`)));
}

async function conversationsPage(main, params) {
  document.title = 'Conversations · chat-gateway';
  const accs = await accounts().catch(() => []);
  const field = (name, label, el) => { el.name = name; el.id = `f-${name}`; el.value = params.get(name) || ''; return h('label', { for: el.id }, label, el); };
  const sel = (opts) => h('select', {}, h('option', { value: '' }, 'any'), opts.map((o) => h('option', { value: o }, o)));
  const form = h('form', { class: 'filters panel', id: 'session-filters', role: 'search' },
    field('account', 'account', sel(accs.map((a) => a.name))),
    field('provider', 'provider', sel(['spark', 'ccmessaging', 'kchat'])),
    field('status', 'status', sel(['open', 'closed'])),
    field('channel', 'channel', h('input', { type: 'text' })),
    field('agent_id', 'agent id', h('input', { type: 'text' })),
    field('customer_id', 'customer id', h('input', { type: 'text', list: 'customer-list' })),
    field('q', 'search messages', h('input', { type: 'search', placeholder: 'text in messages' })),
    h('datalist', { id: 'customer-list' }),
    h('button', { type: 'submit', class: 'primary' }, 'Apply'),
    h('button', { type: 'button', onclick: () => { location.hash = '#/conversations'; } }, 'Clear'));
  const apply = () => {
    focusAfterRoute = document.activeElement && document.activeElement.id;
    const q = new URLSearchParams();
    for (const el of form.elements) if (el.name && el.value) q.set(el.name, el.value.trim());
    const next = `#/conversations${q.toString() ? `?${q}` : ''}`;
    if (location.hash === next) route(); else location.hash = next;
  };
  form.addEventListener('submit', (ev) => { ev.preventDefault(); apply(); });
  for (const el of form.querySelectorAll('select')) el.addEventListener('change', apply);

  const customerInput = form.querySelector('#f-customer_id');
  let customerTimer = null;
  customerInput.addEventListener('input', () => {
    clearTimeout(customerTimer);
    customerTimer = setTimeout(async () => {
      const q = new URLSearchParams({ limit: '20' });
      if (customerInput.value) q.set('q', customerInput.value);
      if (params.get('account')) q.set('account', params.get('account'));
      try {
        const res = await api('GET', `/v1/customers?${q}`);
        form.querySelector('#customer-list').replaceChildren(...(res.data || []).map((c) => h('option', { value: c.external_id }, `${c.name || c.external_id} · ${c.account}`)));
      } catch { /* customer suggestions are optional: an older gateway lacks /v1/customers */ }
    }, 250);
  });

  main.append(h('h1', {}, 'Conversations'), form);
  if (focusAfterRoute) {
    const el = form.querySelector(`#${CSS.escape(focusAfterRoute)}`);
    focusAfterRoute = null;
    if (el) el.focus();
  }
  if (params.get('q')) main.append(await searchResults(params));

  const tbody = h('tbody', { id: 'sessions' });
  const status = h('p', { class: 'muted small', id: 'sessions-status' }, 'Loading…');
  const sentinel = h('div', { class: 'sentinel' });
  main.append(h('div', { class: 'table-wrap' }, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'status'), h('th', {}, 'customer'), h('th', {}, 'provider'),
      h('th', { class: 'hide-narrow' }, 'agent'), h('th', { class: 'hide-narrow' }, 'channel'),
      h('th', { class: 'hide-narrow' }, 'messages'), h('th', {}, 'started'))),
    tbody)), status, sentinel);

  const base = new URLSearchParams({ order: 'desc', limit: '50' });
  for (const f of SESSION_FILTERS) if (params.get(f)) base.set(f, params.get(f));
  let cursor = null;
  let done = false;
  let loading = false;
  const seen = new Set();
  const loadMore = async () => {
    if (loading || done) return;
    loading = true;
    const q = new URLSearchParams(base);
    if (cursor) q.set('cursor', cursor);
    try {
      const page = await api('GET', `/v1/sessions?${q}`);
      for (const sess of page.data || []) {
        if (seen.has(sess.id)) continue;
        seen.add(sess.id);
        tbody.append(sessionRow(sess));
      }
      cursor = page.next_cursor;
      done = !cursor;
      status.textContent = done ? `${seen.size} conversation${seen.size === 1 ? '' : 's'}${seen.size ? '' : ' match these filters'}.` : 'Scroll for more…';
    } catch (e) {
      status.replaceChildren(errorBox(e));
      done = true;
    }
    loading = false;
    if (!done && sentinel.getBoundingClientRect().top < window.innerHeight + 200) loadMore();
  };
  const io = new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) loadMore(); }, { rootMargin: '200px' });
  io.observe(sentinel);
  onLeave(() => io.disconnect());
  await loadMore();

  onLeave(stream.subscribe((ev) => {
    if (!ev.type || !ev.type.startsWith('session.') && ev.type !== 'message.created') return;
    if (ev.type === 'message.created') {
      const row = tbody.querySelector(`tr[data-session-id="${CSS.escape(ev.session_id || '')}"]`);
      if (!row) return;
      const cells = row.children;
      cells[5].textContent = String(Number(cells[5].textContent || 0) + 1);
      return;
    }
    const sess = ev.data;
    if (!sess || !sess.id) return;
    const row = tbody.querySelector(`tr[data-session-id="${CSS.escape(sess.id)}"]`);
    const fresh = sessionRow(sess);
    fresh.classList.add('fresh');
    if (row) {
      if (sessionMatches(sess, params)) row.replaceWith(fresh); else row.remove();
    } else if (ev.type === 'session.opened' && sessionMatches(sess, params) && !params.get('q')) {
      seen.add(sess.id);
      tbody.prepend(fresh);
    }
  }));
}

async function searchResults(params) {
  const q = new URLSearchParams({ q: params.get('q'), order: 'desc', limit: '50' });
  for (const f of ['account', 'provider', 'customer_id']) if (params.get(f)) q.set(f, params.get(f));
  const box = h('section', { class: 'panel', id: 'search-results', 'aria-label': 'Message search results' });
  try {
    const res = await api('GET', `/v1/messages?${q}`);
    const rows = res.data || [];
    box.append(h('h2', {}, `Messages matching “${params.get('q')}”`),
      rows.length ? h('ul', { class: 'feed-list' }, rows.map((m) => h('li', {},
        h('a', { href: `#/conversations/${encodeURIComponent(m.session_id)}` }, fmtTime(m.sent_at)), ' ',
        h('span', { class: 'badge' }, m.direction), ' ', h('span', { class: 'small muted' }, m.account), ' ',
        m.text ?? `[${m.kind}]`))) : h('p', { class: 'muted' }, 'No message matches.'));
  } catch (e) { box.append(errorBox(e, 'Message search')); }
  return box;
}

// ---------------------------------------------------------------- one conversation

async function conversationPage(main, id) {
  document.title = 'Conversation · chat-gateway';
  let sess = (await api('GET', `/v1/sessions/${encodeURIComponent(id)}`)).data;
  const accs = await accounts().catch(() => []);
  const acc = accs.find((a) => a.name === sess.account);
  const caps = acc ? acc.capabilities || [] : [];
  const head = h('section', { class: 'panel', id: 'session-head' });
  const list = h('div', { class: 'messages', id: 'messages', role: 'log', 'aria-label': 'Messages', tabindex: '0' });
  const actions = h('section', { class: 'panel', id: 'session-actions', 'aria-label': 'Actions' });
  main.append(h('p', { class: 'small' }, h('a', { href: '#/conversations' }, '← Conversations')), head, list, actions);

  const byId = new Map();
  const idem = {};
  const keyFor = (action, body) => {
    const sig = `${sess.updated_at}|${JSON.stringify(body || null)}`;
    if (!idem[action] || idem[action].sig !== sig) idem[action] = { sig, key: newKey() };
    return idem[action].key;
  };

  const drawHead = () => {
    head.replaceChildren(
      h('div', { class: 'convo-head' },
        h('h1', {}, personName(sess.customer)),
        h('span', { id: 'session-status' }, badge(sess.status)),
        h('span', { class: 'badge' }, sess.provider), h('span', { class: 'small muted' }, sess.account)),
      h('dl', { class: 'kv' },
        h('dt', {}, 'agent'), h('dd', {}, personName(sess.agent)),
        h('dt', {}, 'channel'), h('dd', {}, sess.channel ?? '—'),
        h('dt', {}, 'external id'), h('dd', {}, h('code', {}, sess.external_id)),
        h('dt', {}, 'started'), h('dd', {}, `${fmtTime(sess.created_at)}${sess.started_by ? ` by ${sess.started_by}` : ''}`),
        h('dt', {}, 'first response'), h('dd', {}, fmtTime(sess.first_response_at)),
        h('dt', {}, 'closed'), h('dd', {}, fmtTime(sess.closed_at)),
        sess.rating ? [h('dt', {}, 'rating'), h('dd', {}, sess.rating)] : null));
  };

  const actionOut = h('div', { id: 'action-result' });
  const run = async (btn, action, path, body) => {
    btn.disabled = true;
    try {
      const res = await api('POST', path, { body: body || {}, idempotencyKey: keyFor(action, body) });
      actionOut.replaceChildren();
      return res;
    } catch (e) {
      actionOut.replaceChildren(errorBox(e));
      return null;
    } finally {
      btn.disabled = false;
    }
  };

  const reply = h('textarea', { id: 'reply-text', 'aria-label': 'Reply', placeholder: 'Reply to the customer…', maxlength: '5000' });
  const sendBtn = h('button', { class: 'primary', type: 'submit', id: 'reply-send' }, 'Send');
  const replyForm = h('form', {
    class: 'reply', id: 'reply',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const text = reply.value;
      if (!text.trim()) return;
      const body = { kind: 'text', text };
      const res = await run(sendBtn, 'send', `/v1/sessions/${encodeURIComponent(sess.id)}/messages`, body);
      if (res && res.data) {
        upsert(res.data);
        reply.value = '';
        delete idem.send;
        watchDelivery(res.data.id);
      }
    },
  }, reply, h('div', { class: 'row' }, sendBtn, h('span', { class: 'small muted' }, 'Ctrl+Enter sends')));
  reply.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) replyForm.requestSubmit(); });

  const drawActions = () => {
    const items = [];
    if (caps.includes('send')) {
      items.push(replyForm);
      reply.disabled = sess.status !== 'open';
      sendBtn.disabled = sess.status !== 'open';
      if (sess.status !== 'open') items.push(h('p', { class: 'small muted' }, 'The session is closed: restart it to reply.'));
    } else {
      items.push(h('p', { class: 'muted', id: 'no-reply' }, `Replies are not available: ${sess.provider} accounts do not support sending through the gateway.`));
    }
    const buttons = [];
    if (caps.includes('close') && sess.status === 'open') {
      const b = h('button', { id: 'action-close', class: 'danger', type: 'button' }, 'Close session');
      b.addEventListener('click', async () => { const r = await run(b, 'close', `/v1/sessions/${encodeURIComponent(sess.id)}/close`, {}); if (r && r.data) setSession(r.data); });
      buttons.push(b);
    }
    if (caps.includes('restart') && sess.status === 'closed') {
      const b = h('button', { id: 'action-restart', type: 'button' }, 'Restart session');
      b.addEventListener('click', async () => { const r = await run(b, 'restart', `/v1/sessions/${encodeURIComponent(sess.id)}/restart`, {}); if (r && r.data) setSession(r.data); });
      buttons.push(b);
    }
    if (caps.includes('transfer') && sess.status === 'open') {
      const agent = h('input', { id: 'transfer-agent', type: 'text', placeholder: 'A2', required: true });
      const notify = h('input', { id: 'transfer-notify', type: 'checkbox' });
      const b = h('button', { id: 'action-transfer', type: 'submit' }, 'Transfer');
      buttons.push(h('form', {
        class: 'filters',
        onsubmit: async (ev) => {
          ev.preventDefault();
          if (!agent.value.trim()) return;
          const body = { agent_id: agent.value.trim(), notify_customer: notify.checked };
          const r = await run(b, 'transfer', `/v1/sessions/${encodeURIComponent(sess.id)}/transfer`, body);
          if (r && r.data) setSession(r.data);
        },
      }, h('label', { for: 'transfer-agent' }, 'to agent id', agent), h('label', { class: 'inline', for: 'transfer-notify' }, notify, 'notify customer'), b));
    }
    if (!buttons.length) buttons.push(h('span', { class: 'small muted' }, caps.some((c) => ['close', 'restart', 'transfer'].includes(c)) ? 'No action applies in this state.' : `${sess.provider} offers no session actions through the gateway.`));
    actions.replaceChildren(h('h2', {}, 'Actions'), ...items, h('div', { class: 'actions' }, buttons), actionOut);
    actions.dataset.ready = 'true';
  };

  const setSession = (next) => {
    if (!next || next.id !== sess.id) return;
    if (next.updated_at && sess.updated_at && next.updated_at < sess.updated_at) return;
    const changed = next.status !== sess.status || JSON.stringify(next.agent) !== JSON.stringify(sess.agent);
    sess = next;
    drawHead();
    if (changed) {
      const typing = document.activeElement === reply;
      drawActions();
      if (typing) reply.focus();
    }
  };

  const upsert = (m) => {
    if (!m || !m.id) return;
    const el = messageEl(m);
    const old = byId.get(m.id);
    if (old) {
      old.el.replaceWith(el);
    } else {
      const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
      list.append(el);
      if (stick) list.scrollTop = list.scrollHeight;
    }
    byId.set(m.id, { m, el });
  };

  // Delivery moves via message.updated on the stream; a slow poll covers a
  // stream that is reconnecting.
  const watchDelivery = (mid) => {
    let tries = 0;
    const t = setInterval(async () => {
      tries += 1;
      const cur = byId.get(mid);
      if (!cur || !cur.m.delivery || cur.m.delivery.status !== 'pending' || tries > 30) { clearInterval(t); return; }
      try { const r = await api('GET', `/v1/messages/${encodeURIComponent(mid)}`); if (r && r.data) upsert(r.data); } catch { /* next try */ }
    }, 2000);
    onLeave(() => clearInterval(t));
  };

  drawHead();
  drawActions();
  onLeave(stream.subscribe((ev) => {
    if (ev.session_id !== sess.id) return;
    if (ev.type && ev.type.startsWith('message.')) upsert(ev.data);
    else if (ev.type && ev.type.startsWith('session.')) setSession(ev.data);
  }));
  try {
    const msgs = await listAll(`/v1/sessions/${encodeURIComponent(sess.id)}/messages?order=asc`, 5000);
    for (const m of msgs) upsert(m);
    // Live events that arrived during the load go back into sent_at order.
    const ordered = [...byId.values()].sort((a, b) => (a.m.sent_at < b.m.sent_at ? -1 : a.m.sent_at > b.m.sent_at ? 1 : 0));
    list.append(...ordered.map((x) => x.el));
    if (!msgs.length) list.append(h('p', { class: 'muted', id: 'no-messages' }, 'No messages yet.'));
    list.scrollTop = list.scrollHeight;
    list.dataset.loaded = 'true';
  } catch (e) { list.append(errorBox(e)); }
}

function messageEl(m) {
  const dir = m.kind === 'event' ? 'event' : m.direction;
  const sender = m.sender || {};
  const meta = h('div', { class: 'meta' },
    h('span', {}, sender.name || sender.role || ''), h('span', {}, sender.role && sender.name ? sender.role : ''),
    h('time', { datetime: m.sent_at }, fmtTime(m.sent_at)),
    m.delivery ? h('span', { class: 'delivery' }, badge(m.delivery.status),
      m.delivery.attempts > 1 ? ` ${m.delivery.attempts} attempts` : '',
      m.delivery.last_error ? ` ${m.delivery.last_error}` : '') : null);
  const el = h('div', { class: `msg ${dir}`, dataset: { messageId: m.id, kind: m.kind, delivery: m.delivery ? m.delivery.status : '' } });
  if (m.kind === 'event') {
    el.append(`— ${m.event || 'event'}${m.text ? `: ${m.text}` : ''} · ${fmtTime(m.sent_at)} —`);
    return el;
  }
  el.append(meta);
  if (m.text) el.append(h('div', { class: 'text' }, m.text));
  const media = m.media;
  if (m.kind === 'image' && media) {
    if (media.url) {
      const img = h('img', { src: media.url, alt: media.file_name || 'image', loading: 'lazy', referrerpolicy: 'no-referrer' });
      // A provider URL the browser cannot load: say so, keep the link.
      img.addEventListener('error', () => img.replaceWith(h('div', { class: 'small muted' }, 'image not loaded: ',
        /^https?:/i.test(media.url) ? h('a', { href: media.url, target: '_blank', rel: 'noopener noreferrer' }, media.url) : media.url)));
      el.append(img);
    }
    else el.append(mediaBlob(m, true));
  } else if (media && ['file', 'audio', 'video'].includes(m.kind)) {
    const name = media.file_name || `${m.kind}${media.mime_type ? ` (${media.mime_type})` : ''}`;
    const size = media.size_bytes ? ` · ${(media.size_bytes / 1024).toFixed(1)} KiB` : '';
    if (media.url) el.append(h('div', {}, '📎 ', h('a', { href: media.url, target: '_blank', rel: 'noopener noreferrer' }, name), size));
    else el.append(h('div', {}, '📎 ', mediaBlob(m, false), size));
  }
  if (m.card) {
    const c = m.card;
    el.append(h('div', { class: 'card' }, h('strong', {}, c.title || 'card'), c.description ? h('div', {}, c.description) : null,
      c.redirect_url && /^https?:/i.test(c.redirect_url) ? h('a', { href: c.redirect_url, target: '_blank', rel: 'noopener noreferrer' }, c.redirect_url) : null));
  }
  if (m.kind === 'location' && !m.text) el.append(h('div', {}, '📍 location'));
  if (!m.text && !media && !m.card && m.kind !== 'location') el.append(h('div', { class: 'muted small' }, `[${m.kind}]`));
  return el;
}

/** Media without a provider URL: fetched through the gateway with the key, shown as a blob URL. */
function mediaBlob(m, inline) {
  const media = m.media || {};
  const name = media.file_name || m.kind;
  const box = h('span', { class: 'media' });
  const load = async () => {
    const resp = await fetch(`/v1/messages/${encodeURIComponent(m.id)}/media`, { headers: authHeaders() });
    if (!resp.ok) {
      let code = `http_${resp.status}`; let msg = resp.statusText;
      try { const j = await resp.json(); code = j.error.code; msg = j.error.message; } catch { /* not JSON */ }
      throw new ApiError(resp.status, code, msg, resp.headers.get('x-request-id'));
    }
    return URL.createObjectURL(await resp.blob());
  };
  if (inline) {
    box.append(h('span', { class: 'small muted' }, 'loading image…'));
    load().then((url) => box.replaceChildren(h('img', { src: url, alt: name })))
      .catch((e) => box.replaceChildren(h('span', { class: 'small muted', dataset: { errorCode: e.code || '' } }, `image unavailable (${e.code || 'error'}: ${e.message})`)));
  } else {
    const b = h('button', { type: 'button' }, `Download ${name}`);
    b.addEventListener('click', async () => {
      b.disabled = true;
      try {
        const url = await load();
        const a = h('a', { href: url, download: name }, name);
        box.replaceChildren(a);
        a.click();
      } catch (e) { box.replaceChildren(h('span', { class: 'small muted' }, `file unavailable (${e.code || 'error'}: ${e.message})`)); }
    });
    box.append(b);
  }
  return box;
}

// ---------------------------------------------------------------- live feed

let feedPaused = false;

function feedPage(main) {
  document.title = 'Live feed · chat-gateway';
  const typeSel = h('select', { id: 'feed-type' }, h('option', { value: '' }, 'all types'), EVENT_TYPES.map((t) => h('option', { value: t }, t)));
  const accSel = h('select', { id: 'feed-account' }, h('option', { value: '' }, 'all accounts'));
  accounts().then((accs) => { for (const a of accs) accSel.append(h('option', { value: a.name }, a.name)); }).catch(() => {});
  const pauseBtn = h('button', { id: 'feed-pause', type: 'button', 'aria-pressed': String(feedPaused) }, feedPaused ? 'Resume' : 'Pause');
  const held = h('span', { class: 'small muted', id: 'feed-held' });
  const list = h('ul', { class: 'feed-list', id: 'feed', 'aria-live': 'off' });
  const empty = h('p', { class: 'muted small' }, 'Events appear here as they happen (kept since this tab opened the console).');
  main.append(h('h1', {}, 'Live feed'),
    h('div', { class: 'filters panel' }, h('label', { for: 'feed-type' }, 'type', typeSel), h('label', { for: 'feed-account' }, 'account', accSel), pauseBtn, held),
    h('div', { class: 'panel' }, empty, list));

  let pending = [];
  const matches = (ev) => (!typeSel.value || ev.type === typeSel.value) && (!accSel.value || ev.account === accSel.value);
  const item = (ev) => {
    const d = ev.data || {};
    const summary = ev.type && ev.type.startsWith('message.')
      ? `${d.direction || ''} ${d.kind || ''}${d.text ? `: ${String(d.text).slice(0, 80)}` : ''}${d.delivery ? ` [${d.delivery.status}]` : ''}`
      : d.status ? `status ${d.status}` : '';
    const pre = h('pre', { hidden: true }, JSON.stringify(ev, null, 2));
    const btn = h('button', { type: 'button', 'aria-expanded': 'false' },
      h('span', { class: 'small muted' }, `#${ev.seq}`), h('span', { class: 'type' }, ev.type),
      h('span', { class: 'small' }, fmtTime(ev.at)), h('span', { class: 'small muted' }, ev.account),
      h('span', { class: 'small' }, summary));
    btn.addEventListener('click', () => { pre.hidden = !pre.hidden; btn.setAttribute('aria-expanded', String(!pre.hidden)); });
    const li = h('li', { dataset: { type: ev.type, seq: ev.seq, sessionId: ev.session_id || '', messageId: ev.message_id || '' } }, btn,
      ev.session_id ? h('a', { class: 'small', href: `#/conversations/${encodeURIComponent(ev.session_id)}` }, 'open conversation') : null, pre);
    return li;
  };
  const redraw = () => {
    const evs = stream.history.filter(matches).slice(-200).reverse();
    list.replaceChildren(...evs.map(item));
    empty.hidden = evs.length > 0;
    pending = [];
    held.textContent = '';
  };
  typeSel.addEventListener('change', redraw);
  accSel.addEventListener('change', redraw);
  pauseBtn.addEventListener('click', () => {
    feedPaused = !feedPaused;
    pauseBtn.textContent = feedPaused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(feedPaused));
    if (!feedPaused) redraw();
  });
  redraw();
  onLeave(stream.subscribe((ev) => {
    if (!matches(ev)) return;
    if (feedPaused) { pending.push(ev); held.textContent = `${pending.length} new event${pending.length === 1 ? '' : 's'} held while paused`; return; }
    empty.hidden = true;
    list.prepend(item(ev));
    while (list.children.length > 200) list.lastElementChild.remove();
  }));
}

// ---------------------------------------------------------------- webhooks

async function webhooksPage(main) {
  document.title = 'Webhooks · chat-gateway';
  const out = h('div', { id: 'webhooks' });
  const created = h('div', { id: 'webhook-created' });
  const url = h('input', { id: 'wh-url', type: 'url', required: true, placeholder: 'https://example.com/hooks/chat' });
  const events = h('input', { id: 'wh-events', type: 'text', value: '*', placeholder: 'message.created, session.closed or *' });
  const accs = h('input', { id: 'wh-accounts', type: 'text', value: '*' });
  const createBtn = h('button', { class: 'primary', type: 'submit', id: 'wh-create' }, 'Add endpoint');
  const idem = { sig: '', key: '' };
  const form = h('form', {
    class: 'filters',
    onsubmit: async (ev) => {
      ev.preventDefault();
      const split = (v) => v.split(',').map((x) => x.trim()).filter(Boolean);
      const body = { url: url.value.trim(), events: split(events.value), accounts: split(accs.value) };
      const sig = JSON.stringify(body);
      if (sig !== idem.sig) { idem.sig = sig; idem.key = newKey(); }
      createBtn.disabled = true;
      try {
        const res = await api('POST', '/v1/webhooks', { body, idempotencyKey: idem.key });
        created.replaceChildren(secretBox('Endpoint added. Its signing secret is shown this once:', res.data.secret));
        idem.sig = '';
        url.value = '';
        await load();
      } catch (e) { created.replaceChildren(errorBox(e, 'Webhooks')); }
      createBtn.disabled = false;
    },
  }, h('label', { for: 'wh-url' }, 'url', url), h('label', { for: 'wh-events' }, 'events', events), h('label', { for: 'wh-accounts' }, 'accounts', accs), createBtn);
  main.append(h('h1', {}, 'Webhooks'), h('details', { class: 'panel' }, h('summary', {}, 'Add an endpoint…'), form), created, out);

  const load = async () => {
    let hooks;
    try { hooks = await listAll('/v1/webhooks', 500); } catch (e) { out.replaceChildren(errorBox(e, 'Webhooks')); return; }
    if (!hooks.length) { out.replaceChildren(h('p', { class: 'muted' }, 'No webhook endpoints yet.')); return; }
    out.replaceChildren(...hooks.map((w) => webhookPanel(w, load)));
  };
  await load();
}

function secretBox(text, secret) {
  return h('div', { class: 'ok', role: 'status' }, text, h('div', { class: 'secret', id: 'new-secret' }, secret || '(none returned)'),
    h('div', { class: 'small' }, 'Store it now; the console does not keep it.'));
}

function webhookPanel(w, reload) {
  const path = `/v1/webhooks/${encodeURIComponent(w.id)}`;
  const out = h('div', { class: 'webhook-result' });
  const deliveries = h('div', { class: 'deliveries' }, h('p', { class: 'muted small' }, 'Loading deliveries…'));
  // `enabled` per the contract; an older gateway shows only `disabled_reason`.
  const enabled = typeof w.enabled === 'boolean' ? w.enabled : !w.disabled_reason;
  const state = enabled ? badge('enabled') : badge(`disabled${w.disabled_reason ? ` (${w.disabled_reason})` : ''}`, 'disabled');
  const keys = {};
  const once = (name) => { keys[name] = keys[name] || newKey(); return keys[name]; };
  const call = async (btn, method, p, body, name, onOk) => {
    btn.disabled = true;
    try {
      const res = await api(method, p, { body, idempotencyKey: method === 'POST' ? once(name) : undefined });
      delete keys[name];
      await onOk(res);
    } catch (e) { out.replaceChildren(errorBox(e, `${name} (${method} ${p.replace(w.id, '{id}')})`)); }
    btn.disabled = false;
  };

  const toggle = h('button', { type: 'button', class: 'wh-toggle' }, enabled ? 'Disable' : 'Enable');
  toggle.addEventListener('click', () => call(toggle, 'PATCH', path, { enabled: !enabled }, 'enable/disable', reload));
  const rotate = h('button', { type: 'button', class: 'wh-rotate' }, 'Rotate secret');
  rotate.addEventListener('click', () => call(rotate, 'POST', `${path}/rotate-secret`, { overlap_secs: 86400 }, 'rotate', (res) => {
    out.replaceChildren(secretBox('New signing secret (the old one keeps signing for 24 h). Shown this once:', res.data && res.data.secret));
  }));
  const since = h('input', { type: 'datetime-local', value: isoToLocalInput(new Date(Date.now() - 3600e3)), 'aria-label': 'recover since' });
  const recover = h('button', { type: 'button', class: 'wh-recover' }, 'Recover failed since');
  recover.addEventListener('click', () => call(recover, 'POST', `${path}/recover`, { since: localToIso(since.value) }, 'recover', (res) => {
    out.replaceChildren(h('div', { class: 'ok', role: 'status' }, `${res.data ? res.data.queued : 0} event(s) queued for delivery again.`));
    loadDeliveries();
  }));
  const del = h('button', { type: 'button', class: 'danger' }, 'Delete');
  del.addEventListener('click', () => {
    if (!window.confirm(`Delete the webhook endpoint ${w.url}?`)) return;
    call(del, 'DELETE', path, undefined, 'delete', reload);
  });

  const loadDeliveries = async () => {
    try {
      const res = await api('GET', `${path}/deliveries?limit=20`);
      const rows = res.data || [];
      if (!rows.length) { deliveries.replaceChildren(h('p', { class: 'muted small' }, 'No deliveries yet.')); return; }
      deliveries.replaceChildren(h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'at'), h('th', {}, 'event'), h('th', {}, 'attempt'), h('th', {}, 'status'),
          h('th', {}, 'response'), h('th', {}, 'error'), h('th', { class: 'hide-narrow' }, 'next attempt'), h('th', {}, ''))),
        h('tbody', {}, rows.map((d) => {
          const retry = h('button', { type: 'button', class: 'wh-retry' }, 'Retry');
          retry.addEventListener('click', () => call(retry, 'POST', `${path}/deliveries/${encodeURIComponent(d.id)}/retry`, {}, `retry ${d.id}`, () => {
            out.replaceChildren(h('div', { class: 'ok', role: 'status' }, `Delivery of event #${d.event_seq} queued again.`));
            loadDeliveries();
          }));
          return h('tr', { dataset: { deliveryId: d.id, status: d.status } },
            h('td', {}, fmtTime(d.at)), h('td', {}, `#${d.event_seq}`), h('td', {}, String(d.attempt)),
            h('td', {}, badge(d.status)), h('td', {}, d.response_status ?? '—'), h('td', { class: 'small' }, d.error ?? '—'),
            h('td', { class: 'hide-narrow' }, fmtTime(d.next_attempt_at)), h('td', {}, retry));
        })))));
    } catch (e) { deliveries.replaceChildren(errorBox(e, 'Deliveries')); }
  };
  loadDeliveries();

  return h('article', { class: 'panel', dataset: { webhookId: w.id } },
    h('div', { class: 'row spread' }, h('h3', {}, h('code', {}, w.url)), state),
    h('dl', { class: 'kv' },
      h('dt', {}, 'events'), h('dd', {}, (w.events || []).map((e) => h('span', { class: 'chip' }, e))),
      h('dt', {}, 'accounts'), h('dd', {}, (w.accounts || []).map((e) => h('span', { class: 'chip' }, e))),
      h('dt', {}, 'created'), h('dd', {}, fmtTime(w.created_at))),
    h('div', { class: 'actions' }, toggle, rotate, h('span', { class: 'row' }, since, recover), del),
    out,
    h('details', { open: true }, h('summary', {}, 'Recent deliveries'), deliveries));
}

// ---------------------------------------------------------------- start

boot();
