// The dashboard in a real browser: Debian's chromium driven by playwright-core
// against a real `errand up` (its server and a worker with the example tasks and
// pipelines) on a fresh SQLite store.
//
//   node tests/browser/dashboard.mjs BUILD_DIR
//
// It enters the token, sends tasks (add, fail, progress, a long sleep it
// revokes, one whose arguments are markup), starts approve_demo and approves
// it by clicking, and checks that each state shows in the page. Screenshots
// at a desktop and a phone viewport go to BUILD_DIR/browser-artifacts/.
// Exits non-zero, with the reason, on any failure.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {chromium} from 'playwright-core';

const WAIT = 30000; // generous: the machine may be loaded
const TOKEN = 'dash-' + Math.random().toString(36).slice(2);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

const build = path.resolve(process.argv[2] || 'build');
const artifacts = path.join(build, 'browser-artifacts');

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const {port} = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Starts the server and a worker on one store: {url, stop()}. The one place
// that knows how errand is launched.
async function launch(dir) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const store = 'sqlite:' + path.join(dir, 'store.db');
  const bin = path.join(build, 'errand');
  const log = (name) => fs.openSync(path.join(dir, name + '.log'), 'w');
  const procs = [
    // errand up: the server and a worker with the example tasks and pipelines
    // (found next to the executable), callback URLs on its own address.
    spawn(bin, ['up', '--listen', `127.0.0.1:${port}`, '--store', store, '--token', TOKEN,
                '--pool', 'threads', '-c', '4'],
          {stdio: ['ignore', log('up'), log('up.err')]}),
  ];
  const stop = async () => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exitCode !== null || p.signalCode !== null ? null
        : new Promise((r) => p.once('exit', r))));
  };
  const t0 = Date.now();
  for (;;) {
    for (const p of procs)
      if (p.exitCode !== null) {
        await stop();
        throw new Error(`${p.spawnargs.slice(0, 2).join(' ')} exited (${p.exitCode}); logs in ${dir}`);
      }
    try {
      const r = await fetch(url + '/api/v1/workers', {headers: {Authorization: 'Bearer ' + TOKEN}});
      if (r.ok && (await r.json()).workers.length > 0) break;
    } catch (e) { /* not listening yet */ }
    if (Date.now() - t0 > WAIT) {
      await stop();
      throw new Error(`the server or the worker did not come up in ${WAIT} ms; logs in ${dir}`);
    }
    await sleep(200);
  }
  return {url, stop};
}

async function apiPost(url, p, body) {
  const r = await fetch(url + p, {method: 'POST', body: JSON.stringify(body),
    headers: {Authorization: 'Bearer ' + TOKEN, 'Content-Type': 'application/json'}});
  if (!r.ok) throw new Error(`POST ${p}: ${r.status} ${await r.text()}`);
  return r.json();
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function textOf(page, sel) {
  return (await page.locator(sel).first().textContent({timeout: WAIT})).trim();
}

// Waits until the page's `#task` state badge reads want.
async function taskState(page, want) {
  await page.waitForFunction((w) => {
    const b = document.querySelector('#task .badge');
    return b && b.textContent === w;
  }, want, {timeout: WAIT});
}

async function shot(page, name) {
  const file = path.join(artifacts, name + '.png');
  await page.screenshot({path: file, fullPage: true});
  console.log('screenshot: ' + file);
}

async function run() {
  fs.mkdirSync(artifacts, {recursive: true});
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'errand-browser-'));
  const srv = await launch(dir);
  const args = typeof process.getuid === 'function' && process.getuid() === 0 ? ['--no-sandbox'] : [];
  const browser = await chromium.launch({executablePath: CHROMIUM, args});
  const errors = [];
  let page = null;
  try {
    const desktop = await browser.newContext({viewport: {width: 1280, height: 800}});
    page = await desktop.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('dialog', (d) => d.accept()); // the Revoke and Abort confirmations

    // The token: asked once, kept for the tab; a wrong one is asked again.
    await page.goto(srv.url + '/');
    await page.locator('#token-input').fill('wrong-' + TOKEN, {timeout: WAIT});
    await page.locator('#token-submit').click();
    await page.waitForFunction(() => document.getElementById('token-dialog').open &&
        document.getElementById('token-why').textContent.includes('refused'), null, {timeout: WAIT});
    await page.locator('#token-input').fill(TOKEN, {timeout: WAIT});
    await page.locator('#token-submit').click();
    await page.locator('table#queues').waitFor({timeout: WAIT});
    await page.waitForFunction(() => document.getElementById('live').textContent === 'live',
                               null, {timeout: WAIT});
    console.log('ok: token accepted, queues shown, event stream live');

    // Tasks: a success, a failure, a progress bar, markup in arguments.
    const add = await apiPost(srv.url, '/api/v1/tasks', {task: 'add', args: [2, 3]});
    const bad = await apiPost(srv.url, '/api/v1/tasks', {task: 'fail', args: ['boom on purpose']});
    const markup = '<img src=x onerror=window.__injected=1>';
    const odd = await apiPost(srv.url, '/api/v1/tasks', {task: 'fail', args: [markup]});

    // The queues' counts move by the event stream alone (no reload).
    await page.waitForFunction(() => {
      const c = document.querySelector('#queues tfoot td[data-state="SUCCESS"]');
      return c && Number(c.textContent) >= 1;
    }, null, {timeout: WAIT});
    await page.waitForFunction(() => {
      const c = document.querySelector('#queues tfoot td[data-state="FAILURE"]');
      return c && Number(c.textContent) >= 2;
    }, null, {timeout: WAIT});
    await shot(page, 'desktop-queues');
    console.log('ok: queue counts updated live');

    await page.goto(srv.url + '/#/task/' + add.id);
    await taskState(page, 'SUCCESS');
    check((await textOf(page, 'pre.json')).length > 0, 'no result shown for add');
    console.log('ok: SUCCESS shown');

    await page.goto(srv.url + '/#/task/' + bad.id);
    await taskState(page, 'FAILURE');
    check((await page.locator('main').textContent()).includes('boom on purpose'),
          'the failure\'s message is not shown');
    console.log('ok: FAILURE shown with its error');

    await page.goto(srv.url + '/#/task/' + odd.id);
    await taskState(page, 'FAILURE');
    check((await page.locator('main').textContent()).includes(markup),
          'markup in data is not shown as text');
    check(await page.evaluate(() => window.__injected === undefined &&
                                    !document.querySelector('main img')),
          'markup in data became elements');
    console.log('ok: data shown as text, never as markup');

    // The progress bar moves: seen strictly between 0 and 100, then full.
    const prog = await apiPost(srv.url, '/api/v1/tasks', {task: 'progress', args: [4]});
    await page.goto(srv.url + '/#/task/' + prog.id);
    const seen = new Set();
    const t0 = Date.now();
    for (;;) {
      const v = await page.evaluate(() => {
        const b = document.querySelector('#progress .bar');
        const s = document.querySelector('#task .badge');
        return {p: b ? Number(b.getAttribute('aria-valuenow')) : null, s: s ? s.textContent : ''};
      });
      if (v.p !== null) seen.add(v.p);
      if (v.p !== null && v.p > 0 && v.p < 100 && !seen.has('shot')) {
        seen.add('shot');
        await shot(page, 'desktop-task-progress');
      }
      if (v.s === 'SUCCESS') break;
      check(Date.now() - t0 < WAIT * 2, 'the progress task did not finish');
      await sleep(100);
    }
    const partial = [...seen].filter((x) => typeof x === 'number' && x > 0 && x < 100);
    check(partial.length >= 1, `the progress bar never showed a partial value (saw ${[...seen]})`);
    await page.waitForFunction(() => {
      const b = document.querySelector('#progress .bar');
      return b && b.getAttribute('aria-valuenow') === '100';
    }, null, {timeout: WAIT});
    console.log(`ok: progress bar moved (${partial.join(', ')} then 100)`);

    // Revoke from the page (a task waiting for its countdown: it never runs).
    const long = await apiPost(srv.url, '/api/v1/tasks', {task: 'add', args: [1, 1], countdown: 600});
    await page.goto(srv.url + '/#/task/' + long.id);
    await page.locator('#revoke:not([disabled])').click({timeout: WAIT});
    await taskState(page, 'REVOKED');
    console.log('ok: revoked from the page');

    // The task list: the listing, or the note that this server has none.
    await page.goto(srv.url + '/#/tasks');
    await page.waitForFunction(() => {
      const l = document.getElementById('task-list');
      return l && (l.querySelector('table') ||
                   l.textContent.includes('task listing not available on this server'));
    }, null, {timeout: WAIT});
    console.log('ok: tasks view: ' + ((await page.locator('#task-list table').count())
        ? 'listing' : 'listing not available on this server'));

    // Workers and their heartbeats.
    await page.goto(srv.url + '/#/workers');
    await page.waitForFunction(() => {
      const t = document.querySelector('#workers tbody');
      return t && t.textContent.includes('threads') && t.textContent.includes('ago');
    }, null, {timeout: WAIT});
    await shot(page, 'desktop-workers');
    console.log('ok: workers shown with heartbeats');

    // A pipeline waiting for approval, approved by a click in its tree.
    const pipe = await apiPost(srv.url, '/api/v1/pipelines', {pipeline: 'approve_demo'});
    await page.goto(srv.url + '/#/pipelines');
    await page.locator(`#pipelines a[href="#/pipeline/${pipe.id}"]`).click({timeout: WAIT});
    await page.waitForFunction(() => document.querySelector('#tree .smsg') &&
        document.querySelector('#tree .smsg').textContent === 'waiting for a choice',
        null, {timeout: WAIT});
    const before = await textOf(page, '#root-status');
    check(before !== 'done', 'the pipeline is done before its approval');
    await shot(page, 'desktop-pipeline-waiting');
    await page.locator('#tree button[data-link="approve"]').click({timeout: WAIT});
    await page.waitForFunction(() => document.getElementById('root-status') &&
        document.getElementById('root-status').textContent === 'done', null, {timeout: WAIT});
    // Its output's value, on demand.
    await page.locator('#tree ul.slots button').first().click({timeout: WAIT});
    check((await textOf(page, '#tree ul.slots pre.json')) === 'true', 'the approval\'s value is not true');
    await shot(page, 'desktop-pipeline-done');
    console.log(`ok: pipeline went from ${before} (waiting for a choice) to done by a click`);

    // Another one aborted from the page while it waits.
    const other = await apiPost(srv.url, '/api/v1/pipelines', {pipeline: 'approve_demo'});
    await page.goto(srv.url + '/#/pipeline/' + other.id);
    await page.locator('#tree button[data-link="deny"]').waitFor({timeout: WAIT});
    await page.locator('#abort:not([disabled])').click({timeout: WAIT});
    await page.waitForFunction(() => document.getElementById('root-status') &&
        document.getElementById('root-status').textContent === 'aborted', null, {timeout: WAIT});
    console.log('ok: pipeline aborted from the page');

    // A phone: the same pages fit its width (tables scroll inside their box).
    const phone = await browser.newContext({viewport: {width: 390, height: 844}, isMobile: true,
                                            hasTouch: true, deviceScaleFactor: 2});
    const mob = await phone.newPage();
    mob.on('pageerror', (e) => errors.push(e.message));
    await mob.goto(srv.url + '/');
    await mob.locator('#token-input').fill(TOKEN, {timeout: WAIT});
    await mob.locator('#token-submit').click();
    await mob.locator('table#queues').waitFor({timeout: WAIT});
    for (const [hash, name] of [['#/queues', 'phone-queues'], ['#/task/' + prog.id, 'phone-task'],
                                ['#/pipeline/' + pipe.id, 'phone-pipeline']]) {
      await mob.goto(srv.url + '/' + hash);
      await mob.waitForFunction(() => !document.querySelector('main .note') ||
          !document.querySelector('main .note').textContent.includes('loading'), null, {timeout: WAIT});
      await mob.waitForSelector('main table, main dl, main #tree', {timeout: WAIT});
      const w = await mob.evaluate(() => document.documentElement.scrollWidth);
      check(w <= 390 + 1, `${hash} is ${w}px wide on a 390px phone`);
      await shot(mob, name);
    }
    console.log('ok: fits a phone');
    check(errors.length === 0, 'script errors in the page: ' + errors.join('; '));
  } catch (e) {
    e.message += ` (server and worker logs in ${dir})`;
    if (page) await shot(page, 'failure').catch(() => {});
    if (errors.length) e.message += ' (script errors in the page: ' + errors.join('; ') + ')';
    throw e;
  } finally {
    await browser.close();
    await srv.stop();
  }
  fs.rmSync(dir, {recursive: true, force: true}); // kept, with its logs, on a failure
}

run().then(() => {
  console.log('dashboard: all checks passed; screenshots in ' + artifacts);
}, (e) => {
  console.error('dashboard: FAILED: ' + (e && e.message ? e.message : e));
  process.exit(1);
});
