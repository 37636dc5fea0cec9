/* errand's dashboard, its common parts: building the DOM (every value from
 * the server enters the page as text, textContent, never as markup), the
 * token, calls to the API and the event stream (GET /api/v1/events, read
 * with fetch so that the token travels in a header, never in a URL).
 * dash.js, loaded after it, has the views. */
'use strict';

const TOKEN_KEY = 'errand.token';
const STATES = ['PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED'];
const main = document.getElementById('main');

/* ---- DOM ---- */

/* el('tr', {class: 'x'}, child...): strings and numbers become text nodes. */
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return e;
}

function badge(state) {
  return el('span', {class: 'badge s-' + String(state).toLowerCase()}, state);
}

function json(v) {
  return el('pre', {class: 'json'}, JSON.stringify(v, null, 2));
}

function when(ms) {
  if (!ms) return '';
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

function show(...nodes) {
  main.replaceChildren(...nodes.flat().filter((n) => n !== undefined && n !== null && n !== false && n !== ''));
}

function note(text, cls) {
  return el('p', {class: 'note ' + (cls || '')}, text);
}

/* ---- The token ---- */

let tokenWaiters = null;

function askToken(why) {
  const dlg = document.getElementById('token-dialog');
  document.getElementById('token-why').textContent = why;
  if (!tokenWaiters) {
    tokenWaiters = [];
    dlg.showModal();
    document.getElementById('token-input').focus();
  }
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

document.getElementById('token-form').addEventListener('submit', () => {
  const input = document.getElementById('token-input');
  sessionStorage.setItem(TOKEN_KEY, input.value);
  input.value = '';
  const waiters = tokenWaiters || [];
  tokenWaiters = null;
  waiters.forEach((w) => w());
  restartEvents();
});

function tokenWhy() {
  return sessionStorage.getItem(TOKEN_KEY) ? 'That token was refused: try again.'
                                           : 'This server needs its API token.';
}

function authHeaders() {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? {Authorization: 'Bearer ' + t} : {};
}

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/* A call under /api/: its JSON answer, or an HttpError carrying the
 * server's message. A 401 asks for the token and tries again. */
async function api(path, opts) {
  for (;;) {
    const o = Object.assign({}, opts || {});
    o.headers = Object.assign({}, o.headers || {}, authHeaders());
    const r = await fetch(path, o);
    if (r.status === 401) {
      await askToken(tokenWhy());
      continue;
    }
    let body = null;
    try {
      body = await r.json();
    } catch (e) {
      body = null;
    }
    if (!r.ok) {
      const msg = body && body.error && body.error.message ? body.error.message
                                                           : 'HTTP ' + r.status;
      throw new HttpError(r.status, msg);
    }
    return body;
  }
}

/* ---- The event stream ---- */

const handlers = {stats: [], task: [], workers: [], pipeline: []};
let evAbort = null;
let evWant = '';
let evRetry = null;

function setLive(on, text) {
  const l = document.getElementById('live');
  l.textContent = text;
  l.className = 'live ' + (on ? 'on' : 'off');
}

function dispatch(name, data) {
  let v;
  try {
    v = JSON.parse(data);
  } catch (e) {
    return;
  }
  (handlers[name] || []).forEach((h) => h(v));
}

/* Reads the stream for the current view's query (?task=, ?pipeline=); the
 * stream is opened again when that changes, and after a failure. */
async function readEvents(query) {
  const ctl = new AbortController();
  evAbort = ctl;
  try {
    const r = await fetch('/api/v1/events' + query, {headers: authHeaders(), signal: ctl.signal});
    if (r.status === 401) {
      setLive(false, 'no token');
      await askToken(tokenWhy());
      return; /* the token form opens the stream again */
    }
    if (!r.ok || !r.body) throw new Error('HTTP ' + r.status);
    setLive(true, 'live');
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buf += value;
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let name = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue; /* a comment: the keepalive */
          const c = line.indexOf(':');
          const field = c < 0 ? line : line.slice(0, c);
          const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
          if (field === 'event') name = val;
          else if (field === 'data') data.push(val);
        }
        if (data.length) dispatch(name, data.join('\n'));
      }
    }
    throw new Error('stream ended');
  } catch (e) {
    if (ctl.signal.aborted) return;
    setLive(false, 'offline');
    clearTimeout(evRetry);
    evRetry = setTimeout(() => {
      if (evAbort === ctl) openEvents(evWant, true);
    }, 3000);
  }
}

function openEvents(query, force) {
  if (!force && query === evWant && evAbort) return;
  evWant = query;
  if (evAbort) evAbort.abort();
  clearTimeout(evRetry);
  readEvents(query);
}

function restartEvents() {
  openEvents(evWant, true);
}
