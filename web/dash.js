/* errand's dashboard, its views: queues, tasks, a task, workers,
 * pipelines and a pipeline's tree, chosen by the URL's hash (#/task/ID...)
 * and kept current by the events core.js reads. */
'use strict';

/* ---- Queues ---- */

let lastStats = null;
let storeName = ''; /* from GET /api/v1/queues: the events' counts do not repeat it */
const seenCounts = []; /* [{t, done: {queue: finished count}}], the last minute */

function finishedOf(counts) {
  return (counts.SUCCESS || 0) + (counts.FAILURE || 0) + (counts.REVOKED || 0);
}

function noteStats(stats) {
  lastStats = stats;
  const done = {};
  for (const [q, c] of Object.entries(stats.queues || {})) done[q] = finishedOf(c);
  done['*'] = finishedOf(stats.total || {});
  const now = Date.now();
  seenCounts.push({t: now, done});
  while (seenCounts.length > 2 && now - seenCounts[0].t > 60000) seenCounts.shift();
}

/* Tasks finished per second over the last ten seconds or so, from the
 * counts seen then and now (a count that went down, results expiring, is
 * no work done). */
function rate(q) {
  if (seenCounts.length < 2) return null;
  const last = seenCounts[seenCounts.length - 1];
  let first = seenCounts[0];
  for (const h of seenCounts) {
    if (last.t - h.t <= 10000) {
      first = h;
      break;
    }
  }
  if (first === last) first = seenCounts[seenCounts.length - 2];
  const dt = (last.t - first.t) / 1000;
  if (dt <= 0) return null;
  const d = (last.done[q] || 0) - (first.done[q] || 0);
  return Math.max(0, d) / dt;
}

function renderQueues() {
  const s = lastStats;
  if (!s) return show(el('h1', {}, 'Queues'), note('loading...'));
  const head = el('tr', {}, el('th', {}, 'queue'), STATES.map((x) => el('th', {}, x)),
                  el('th', {}, 'finished/s'));
  const row = (name, c, key, cls) => el('tr', {class: cls},
      el('td', {}, name), STATES.map((x) => el('td', {class: 'num', 'data-state': x}, c[x] || 0)),
      el('td', {class: 'num rate'}, rate(key) === null ? '-' : rate(key).toFixed(2)));
  const rows = Object.keys(s.queues || {}).sort().map((q) => row(q, s.queues[q], q));
  if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: STATES.length + 2}, 'no tasks yet')));
  show(el('h1', {}, 'Queues'),
       el('div', {class: 'scroll'}, el('table', {id: 'queues'}, el('thead', {}, head),
          el('tbody', {}, rows), el('tfoot', {}, row('all', s.total || {}, '*', 'total')))),
       storeName ? el('p', {class: 'hint'}, 'store: ', storeName) : '');
}

async function viewQueues() {
  renderQueues();
  try {
    const s = await api('/api/v1/queues');
    storeName = s.store || '';
    noteStats(s);
    if (current === 'queues') renderQueues();
  } catch (e) {
    show(el('h1', {}, 'Queues'), note(e.message, 'error'));
  }
}

/* ---- Tasks ---- */

let taskFilter = {state: '', name: '', queue: ''};

function taskRow(t) {
  return el('tr', {},
      el('td', {}, el('a', {href: '#/task/' + encodeURIComponent(t.id)}, t.id)),
      el('td', {}, t.task || ''), el('td', {}, badge(t.state)), el('td', {}, t.queue || ''),
      el('td', {}, t.created || ''));
}

async function viewTasks(cursor) {
  const form = el('form', {class: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    const f = new FormData(ev.target);
    taskFilter = {state: f.get('state'), name: f.get('name').trim(), queue: f.get('queue').trim()};
    viewTasks();
  }},
      el('label', {}, 'state ', el('select', {name: 'state'}, el('option', {value: ''}, 'any'),
          STATES.map((s) => el('option', {value: s, selected: taskFilter.state === s}, s)))),
      el('label', {}, 'name ', el('input', {name: 'name', value: taskFilter.name, size: 12})),
      el('label', {}, 'queue ', el('input', {name: 'queue', value: taskFilter.queue, size: 8})),
      el('button', {type: 'submit'}, 'Filter'));
  const go = el('form', {class: 'filters', onsubmit: (ev) => {
    ev.preventDefault();
    const id = new FormData(ev.target).get('id').trim();
    if (id) location.hash = '#/task/' + encodeURIComponent(id);
  }}, el('label', {}, 'task id ', el('input', {name: 'id', id: 'goto-id', size: 36})),
      el('button', {type: 'submit'}, 'Open'));
  const body = el('div', {id: 'task-list'}, note('loading...'));
  show(el('h1', {}, 'Tasks'), go, form, body);
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(taskFilter)) if (v) q.set(k, v);
  if (cursor) q.set('cursor', cursor);
  q.set('limit', '50');
  try {
    const r = await api('/api/v1/tasks?' + q.toString());
    const rows = (r.tasks || []).map(taskRow);
    if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: 5}, 'no tasks')));
    body.replaceChildren(el('div', {class: 'scroll'}, el('table', {},
        el('thead', {}, el('tr', {}, ['id', 'task', 'state', 'queue', 'created'].map(
            (h) => el('th', {}, h)))), el('tbody', {}, rows))),
        r.next_cursor ? el('button', {onclick: () => viewTasks(r.next_cursor)}, 'Next page') : '');
  } catch (e) {
    /* a server without the listing: no route (404), or only POST there (405) */
    body.replaceChildren(e.status === 404 || e.status === 405
                             ? note('task listing not available on this server')
                                          : note(e.message, 'error'));
  }
}

/* ---- One task ---- */

function progressBar(p, msg) {
  const f = typeof p === 'number' && p >= 0 ? Math.min(1, p) : 0;
  const bar = el('div', {class: 'bar', role: 'progressbar', 'aria-valuemin': 0,
                         'aria-valuemax': 100, 'aria-valuenow': Math.round(f * 100)});
  bar.style.width = (f * 100).toFixed(1) + '%';
  return el('div', {class: 'progress', id: 'progress'}, el('div', {class: 'track'}, bar),
            el('span', {class: 'pmsg'}, Math.round(f * 100) + '%' + (msg ? ' ' + msg : '')));
}

function renderTask(t, id) {
  const rows = [];
  const add = (k, v) => {
    if (v !== undefined && v !== null && v !== '') rows.push(el('dt', {}, k), el('dd', {}, v));
  };
  add('id', t.id);
  add('task', t.task);
  add('state', badge(t.state));
  add('queue', t.queue);
  add('name', t.name);
  add('key', t.key);
  add('attempt', t.attempt);
  add('retries', t.retries);
  add('worker', t.worker);
  add('created', t.created);
  add('eta', t.eta);
  add('expires', t.expires);
  add('started', t.started);
  add('finished', t.finished);
  const blocks = [];
  if (typeof t.progress === 'number' && t.progress >= 0)
    blocks.push(el('h2', {}, 'Progress'), progressBar(t.progress, t.progress_msg));
  for (const k of ['args', 'kwargs', 'context']) if (k in t) blocks.push(el('h2', {}, k), json(t[k]));
  if ('result' in t) blocks.push(el('h2', {}, 'result'), json(t.result));
  if (t.error) blocks.push(el('h2', {}, 'error'), json(t.error));
  const finished = ['SUCCESS', 'FAILURE', 'REVOKED'].includes(t.state);
  const revoke = el('button', {class: 'danger', id: 'revoke', disabled: finished || t.state === 'UNKNOWN',
    onclick: async () => {
      if (!confirm('Revoke task ' + id + '?')) return;
      try {
        await api('/api/v1/tasks/' + encodeURIComponent(id), {method: 'DELETE'});
        refreshTask(id);
      } catch (e) {
        main.append(note(e.message, 'error'));
      }
    }}, 'Revoke');
  show(el('h1', {}, 'Task'), el('dl', {id: 'task'}, rows), el('div', {class: 'actions'}, revoke),
       blocks);
}

async function refreshTask(id) {
  try {
    const t = await api('/api/v1/tasks/' + encodeURIComponent(id));
    if (current === 'task:' + id) renderTask(t, id);
  } catch (e) {
    if (current === 'task:' + id) show(el('h1', {}, 'Task'), note(e.message, 'error'));
  }
}

/* ---- Workers ---- */

async function viewWorkers() {
  if (!main.querySelector('#workers')) show(el('h1', {}, 'Workers'), note('loading...'));
  let r;
  try {
    r = await api('/api/v1/workers');
  } catch (e) {
    return show(el('h1', {}, 'Workers'), note(e.message, 'error'));
  }
  if (current !== 'workers') return;
  const now = Date.now();
  const rows = (r.workers || []).map((w) => el('tr', {},
      el('td', {}, w.id), el('td', {}, w.hostname || ''), el('td', {class: 'num'}, w.pid || ''),
      el('td', {}, w.pool || ''), el('td', {class: 'num'}, w.concurrency || ''),
      el('td', {}, (w.queues || []).join(', ')), el('td', {class: 'num'}, w.active || 0),
      el('td', {class: 'num'}, w.processed || 0),
      el('td', {class: 'num'}, w.heartbeat_ms ? ((now - w.heartbeat_ms) / 1000).toFixed(0) + ' s ago' : '')));
  if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: 9}, 'no live workers')));
  show(el('h1', {}, 'Workers'), el('div', {class: 'scroll'}, el('table', {id: 'workers'},
      el('thead', {}, el('tr', {}, ['id', 'host', 'pid', 'pool', 'slots', 'queues', 'active',
                                     'processed', 'heartbeat'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows))));
}

/* ---- Pipelines ---- */

async function viewPipelines() {
  if (!main.querySelector('#pipelines')) show(el('h1', {}, 'Pipelines'), note('loading...'));
  let r;
  try {
    r = await api('/api/v1/pipelines?limit=100');
  } catch (e) {
    return show(el('h1', {}, 'Pipelines'), note(e.message, 'error'));
  }
  if (current !== 'pipelines') return;
  const rows = (r.pipelines || []).map((p) => el('tr', {},
      el('td', {}, el('a', {href: '#/pipeline/' + encodeURIComponent(p.id)}, p.id)),
      el('td', {}, p.name), el('td', {}, el('span', {class: 'badge p-' + p.status}, p.status)),
      el('td', {}, when(p.created_ms))));
  if (!rows.length) rows.push(el('tr', {}, el('td', {colspan: 4}, 'no pipelines')));
  show(el('h1', {}, 'Pipelines'), el('div', {class: 'scroll'}, el('table', {id: 'pipelines'},
      el('thead', {}, el('tr', {}, ['root', 'name', 'status', 'created'].map((h) => el('th', {}, h)))),
      el('tbody', {}, rows))));
}

const collapsed = new Set(); /* pipeline ids folded by the user */
const shownSlots = new Set(); /* slot ids whose value the user asked to see */

/* Follows one of an async pipeline's links (an approve or deny callback):
 * the same path on this server, which serves /callback. */
async function follow(url, key, status) {
  let path;
  try {
    const u = new URL(url, location.href);
    path = u.pathname + u.search;
  } catch (e) {
    status.textContent = 'not a URL: ' + url;
    return;
  }
  status.textContent = key + '...';
  const r = await fetch(path, {method: 'POST'});
  const text = await r.text();
  status.textContent = r.ok ? text : 'HTTP ' + r.status + ': ' + text;
}

function slotView(id, tree) {
  const s = (tree.slots || {})[id] || {};
  const open = shownSlots.has(id);
  const btn = el('button', {class: 'small', onclick: () => {
    if (open) shownSlots.delete(id); else shownSlots.add(id);
    renderTree(tree);
  }}, open ? 'hide' : 'value');
  return el('li', {}, el('code', {}, id), ' ', s.status || 'unknown', ' ',
            s.status === 'filled' ? btn : '', open ? json(s.value) : '');
}

function pipeNode(id, tree, depth) {
  const p = (tree.pipelines || {})[id];
  if (!p) return el('li', {}, id);
  const status = el('span', {class: 'follow'});
  const links = Object.entries(p.links || {}).map(([k, url]) =>
      el('button', {class: 'link', 'data-link': k, disabled: p.status === 'done' || p.status === 'aborted',
                    onclick: () => follow(url, k, status)}, k));
  const kids = (p.children || []).map((c) => pipeNode(typeof c === 'string' ? c : c.id, tree, depth + 1));
  const outs = Object.entries(p.outputs || {}).map(([name, slot]) =>
      el('div', {}, 'output ', el('b', {}, name), ': ', el('ul', {class: 'slots'}, slotView(slot, tree))));
  const details = el('details', {class: 'pipe p-' + p.status, 'data-id': id, open: !collapsed.has(id),
                                 ontoggle: (ev) => {
                                   if (ev.target.open) collapsed.delete(id); else collapsed.add(id);
                                 }},
      el('summary', {}, el('span', {class: 'name'}, p.name), ' ',
         el('span', {class: 'badge p-' + p.status}, p.status), ' ',
         p.status_message ? el('span', {class: 'smsg'}, p.status_message) : ''),
      el('div', {class: 'meta'}, 'id ', el('code', {}, id), ' attempts ', p.attempts || 0,
         p.max_attempts ? ' of ' + p.max_attempts : '',
         p.start_ms ? ' started ' + when(p.start_ms) : '', p.end_ms ? ' ended ' + when(p.end_ms) : ''),
      p.retry_message ? el('div', {class: 'meta'}, 'retry: ', p.retry_message) : '',
      p.abort_message ? el('div', {class: 'meta'}, 'abort: ', p.abort_message) : '',
      el('div', {class: 'meta'}, 'args ', el('code', {}, JSON.stringify(p.args || []))),
      links.length ? el('div', {class: 'links'}, links, status) : '',
      outs, kids.length ? el('ul', {class: 'children'}, kids) : '');
  return el('li', {}, details);
}

let lastTree = null;

function renderTree(tree) {
  lastTree = tree;
  const root = (tree.pipelines || {})[tree.root] || {};
  const ended = root.status === 'done' || root.status === 'aborted';
  const abort = el('button', {class: 'danger', id: 'abort', disabled: ended, onclick: async () => {
    if (!confirm('Abort pipeline ' + tree.root + ' and its children?')) return;
    try {
      await api('/api/v1/pipelines/' + encodeURIComponent(tree.root) + '/abort', {method: 'POST'});
    } catch (e) {
      main.append(note(e.message, 'error'));
    }
  }}, 'Abort');
  show(el('h1', {}, 'Pipeline ', el('span', {class: 'badge p-' + root.status, id: 'root-status'},
                                     root.status || '')),
       el('div', {class: 'actions'}, abort),
       el('ul', {class: 'tree', id: 'tree'}, pipeNode(tree.root, tree, 0)));
}

async function refreshPipeline(id) {
  try {
    const t = await api('/api/v1/pipelines/' + encodeURIComponent(id));
    if (current === 'pipeline:' + id) renderTree(t);
  } catch (e) {
    if (current === 'pipeline:' + id) show(el('h1', {}, 'Pipeline'), note(e.message, 'error'));
  }
}

/* ---- Routing ---- */

let current = '';
let ticker = null;
let listRefresh = null;

/* Refreshes a list view at most once a second however many events come,
 * and not at all once the user has gone to another view. */
function soon(view, fn) {
  if (listRefresh) return;
  listRefresh = setTimeout(() => {
    listRefresh = null;
    if (current === view) fn();
  }, 1000);
}

handlers.stats.push((s) => {
  noteStats(s);
  if (current === 'queues') renderQueues();
  if (current === 'pipelines') soon('pipelines', viewPipelines);
});
handlers.workers.push(() => {
  if (current === 'workers') viewWorkers();
});
handlers.task.push((t) => {
  if (current === 'task:' + t.id) refreshTask(t.id);
  if (current === 'tasks') soon('tasks', () => viewTasks());
});
handlers.pipeline.push((tree) => {
  if (current === 'pipeline:' + tree.root) renderTree(tree);
});

function route() {
  const h = location.hash.replace(/^#\/?/, '');
  const [view, ...rest] = h.split('/');
  const arg = decodeURIComponent(rest.join('/'));
  clearInterval(ticker);
  ticker = null;
  clearTimeout(listRefresh);
  listRefresh = null;
  document.querySelectorAll('nav a').forEach((a) => {
    const v = a.getAttribute('data-view');
    a.classList.toggle('here', v === (view || 'queues') || v === view + 's');
  });
  if (view === 'task' && arg) {
    current = 'task:' + arg;
    show(el('h1', {}, 'Task'), note('loading...'));
    openEvents('?task=' + encodeURIComponent(arg));
    refreshTask(arg);
  } else if (view === 'pipeline' && arg) {
    current = 'pipeline:' + arg;
    show(el('h1', {}, 'Pipeline'), note('loading...'));
    openEvents('?pipeline=' + encodeURIComponent(arg));
    refreshPipeline(arg);
  } else if (view === 'tasks') {
    current = 'tasks';
    openEvents('');
    viewTasks();
  } else if (view === 'workers') {
    current = 'workers';
    openEvents('');
    viewWorkers();
    ticker = setInterval(viewWorkers, 5000); /* heartbeat ages */
  } else if (view === 'pipelines') {
    current = 'pipelines';
    openEvents('');
    viewPipelines();
  } else {
    current = 'queues';
    openEvents('');
    viewQueues();
    ticker = setInterval(() => { /* no event: the same counts now, the rates fall */
      if (lastStats) noteStats(lastStats);
      renderQueues();
    }, 2000);
  }
}

window.addEventListener('hashchange', route);
route();
