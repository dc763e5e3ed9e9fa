// The admin dashboard (/admin, served by tether itself) in headless Chromium
// (Debian's, driven by playwright-core), against a real tether with tokens
// and a real worker process (cmd/tether-worker):
//   - the page loads without a token and asks for one; a token without the
//     admin permission is refused, an admin token signs in; log out forgets it;
//   - the live counts follow clients that connect over WebSocket, SSE and TCP
//     and leave in different ways (a clean WebSocket close, a TCP reset, an SSE
//     client that goes away), each end counted under its reason;
//   - a job cancelled with the page's button ends on its worker: the handler
//     returns long before its sleep would have.
// With TETHER_SCREENSHOTS=DIR it writes the desktop and phone screenshots of
// docs/img there: `TETHER_SCREENSHOTS=$PWD/../../docs/img npm test -- test/dashboard.test.mjs`.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { TETHER_BIN, WORKER_BIN, startTether, tempDir, waitFor } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const SHOTS = process.env.TETHER_SCREENSHOTS;

let srv, tmp, context, page, profile, secretFile, tcpPort;
const children = [];
const sockets = [];

/** token signs a token with `tether token`. */
function token(sub, flags = []) {
  return execFileSync(TETHER_BIN, ['token', '--secret-file', secretFile, '--sub', sub, '--ttl', '10m', ...flags], { encoding: 'utf8' }).trim();
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/deps.sh`);
  assert.ok(WORKER_BIN, 'TETHER_WORKER_BIN is not set: run the tests with `npm test`');
  tmp = tempDir('tether-dash-');
  secretFile = join(tmp.dir, 'secret');
  writeFileSync(secretFile, 'a-dashboard-test-secret-of-more-than-32-bytes');
  srv = await startTether({ data: join(tmp.dir, 'data'), args: ['--token-secret-file', secretFile, '--tcp-addr', '127.0.0.1:0', '--job-cancel-grace', '2s'] });
  tcpPort = Number(/listening for TCP" addr=127\.0\.0\.1:(\d+)/.exec(srv.log())?.[1]);
  assert.ok(tcpPort > 0, 'no TCP address in the log:\n' + srv.log());
  profile = mkdtempSync(join(tmpdir(), 'tether-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.error('page error:', e));
});

after(async () => {
  for (const s of sockets) s.destroy();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await context?.close();
  await srv?.kill('SIGKILL');
  tmp?.cleanup();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// What the page shows, read from the DOM (the page renders only text).
const shown = (key) => page.evaluate((k) => document.querySelector(`[data-k="${k}"]`)?.textContent ?? null, key);
const endsShown = (reason, transport) =>
  page.evaluate(([r, t]) => {
    for (const tr of document.querySelectorAll('#ends-totals tbody tr')) {
      if (tr.dataset.reason === r && tr.dataset.transport === t) return Number(tr.querySelector('[data-k="count"]').textContent);
    }
    return 0;
  }, [reason, transport]);
const waitShown = (key, want, what) => waitFor(async () => (await shown(key)) === String(want), { what: `${what} (${key} = ${want})` });

// Clients of each transport, each for its own user.
function wsClient(sub) {
  const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/v1/ws?token=${token(sub, ['--subscribe', '>'])}`);
  return new Promise((resolve, reject) => {
    ws.onerror = () => reject(new Error('websocket failed'));
    ws.onopen = () => {
      ws.send(JSON.stringify({ id: '1', type: 'subscribe', channel: 'room.lobby' }));
      resolve(ws);
    };
  });
}
function sseClient(sub, channel = 'room.lobby') {
  return new Promise((resolve, reject) => {
    const req = http.get(`${srv.url}/v1/channels/${channel}/events?token=${token(sub, ['--subscribe', '>'])}`, (res) => {
      assert.equal(res.statusCode, 200);
      res.on('data', () => {});
      resolve(req);
    });
    req.on('error', () => {}); // destroyed by the test
    req.on('timeout', () => reject(new Error('sse timed out')));
  });
}
function tcpClient(sub) {
  const s = net.connect(tcpPort, '127.0.0.1');
  sockets.push(s);
  s.on('error', () => {});
  s.setEncoding('utf8');
  let got = '';
  return new Promise((resolve) => {
    s.on('data', (d) => {
      got += d;
      if (got.includes('"id":"1"')) resolve(s);
    });
    s.write(JSON.stringify({ type: 'hello', token: token(sub, ['--subscribe', '>']) }) + '\n');
    s.write(JSON.stringify({ id: '1', type: 'subscribe', channel: 'room.lobby' }) + '\n');
  });
}

async function login(tok) {
  await page.fill('#token', tok);
  await page.click('#login-form button[type="submit"]');
}

test('dashboard: sign-in needs an admin token; non-admin refused; log out forgets it', async () => {
  await page.goto(srv.url + '/admin');
  await page.waitForSelector('#login-form', { state: 'visible' });
  assert.equal(await page.isVisible('#dash'), false);

  await login(token('alice', ['--subscribe', '>']));
  await waitFor(async () => /forbidden/.test(await page.textContent('#login-error')), { what: 'the refusal of a non-admin token' });
  assert.match(await page.textContent('#login-error'), /admin/);
  assert.equal(await page.isVisible('#dash'), false);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);

  await login('not.a.token');
  await waitFor(async () => /unauthorized/.test(await page.textContent('#login-error')), { what: 'the refusal of a bad token' });

  await login(token('root', ['--admin']));
  await page.waitForSelector('#dash', { state: 'visible' });
  await waitFor(async () => (await page.getAttribute('#status', 'data-state')) === 'live', { what: 'the live stream' });
  assert.ok(await page.evaluate(() => sessionStorage.getItem('tether.admin.token')));

  // The token survives a reload (same tab), and log out forgets it.
  await page.reload();
  await page.waitForSelector('#dash', { state: 'visible' });
  await page.click('#logout');
  await page.waitForSelector('#login-form', { state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('tether.admin.token')), null);
  await page.reload();
  await page.waitForSelector('#login-form', { state: 'visible' });
  assert.equal(await page.isVisible('#dash'), false);
  assert.equal(await page.textContent('#login-error'), '', 'no error shown before a token was given');

  await login(token('root', ['--admin']));
  await page.waitForSelector('#dash', { state: 'visible' });
});

test('dashboard: live counts follow clients as they connect and leave, each end under its reason', async () => {
  await waitShown('conn-total', 0, 'no connection yet');
  // The page itself is no connection of the registry: its stream is the dashboard's own.
  const ws = await wsClient('ann');
  const sse = await sseClient('bob');
  const tcp = await tcpClient('cid');
  await waitShown('conn-total', 3, 'three connections');
  for (const t of ['websocket', 'sse', 'tcp']) assert.equal(await shown('conn-' + t), '1');
  const users = await page.evaluate(() => [...document.querySelectorAll('#conn-users tbody tr')].map((tr) => tr.dataset.user).sort());
  assert.deepEqual(users, ['ann', 'bob', 'cid']);
  await waitFor(() => page.evaluate(() => document.querySelector('#channels tr[data-channel="room.lobby"] [data-k="subscribers"]')?.textContent === '3'), { what: 'room.lobby with 3 subscribers' });

  // A clean WebSocket close, a TCP reset, and an SSE client that goes away.
  ws.close(1000, 'bye');
  await waitFor(async () => (await endsShown('closed', 'websocket')) === 1, { what: 'websocket closed counted' });
  tcp.resetAndDestroy();
  await waitFor(async () => (await endsShown('reset', 'tcp')) === 1, { what: 'tcp reset counted' });
  sse.destroy();
  await waitFor(async () => (await page.$$('#ends-totals tbody tr[data-transport="sse"]')).length === 1, { what: 'the SSE end counted' });
  const sseReason = await page.getAttribute('#ends-totals tbody tr[data-transport="sse"]', 'data-reason');
  assert.ok(['closed', 'reset'].includes(sseReason), `SSE ended as ${sseReason}`);
  await waitShown('conn-total', 0, 'every client gone');
  // The chart drew the ends of the last seconds, one colour per reason.
  const fills = await page.evaluate(() => new Set([...document.querySelectorAll('#ends-chart rect')].map((r) => r.getAttribute('fill'))).size);
  assert.ok(fills >= 2, `chart has ${fills} colours, want one per reason`);
});

test('dashboard: a job cancelled from the page ends on its worker', async () => {
  const effects = join(tmp.dir, 'effects.log');
  const w = spawn(WORKER_BIN, ['--url', `ws://127.0.0.1:${srv.port}`, '--id', 'worker-1', '--concurrency', '2', '--token', token('svc', ['--worker', '*']), '--effects-log', effects], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(w);
  let wlog = '';
  w.stderr.on('data', (d) => (wlog += d));
  await waitFor(() => page.evaluate(() => !!document.querySelector('#workers tr[data-worker="svc/worker-1"]')), { what: 'the worker listed' });

  const creator = token('dave', ['--jobs', 'sleep']);
  const res = await fetch(`${srv.url}/v1/jobs`, { method: 'POST', headers: { Authorization: 'Bearer ' + creator }, body: JSON.stringify({ type: 'sleep', payload: { ms: 60000 }, on_disconnect: 'detach' }) });
  assert.equal(res.status, 201);
  const { id } = await res.json();
  await waitFor(() => page.evaluate((id) => document.querySelector(`#jobs tr[data-job="${id}"]`)?.dataset.state === 'running', id), { what: 'the job running' });
  const running = await page.evaluate(() => document.querySelector('#workers tr[data-worker="svc/worker-1"]').textContent);
  assert.match(running, new RegExp(`sleep ${id}`));
  await waitShown('jobs-running', 1, 'one job running');

  if (SHOTS) await screenshots();

  const t0 = Date.now();
  await page.click(`#jobs tr[data-job="${id}"] button[data-cancel]`);
  // The handler returns on the worker (its effects line is written then), long before its 60 s.
  const line = await waitFor(() => existsSync(effects) && readFileSync(effects, 'utf8').split('\n').find((l) => l.startsWith(id + ' ')), { what: 'the handler to end on the worker' });
  const [, attempt, start, end, pid] = line.split(' ');
  assert.equal(attempt, '1');
  assert.equal(Number(pid), w.pid);
  assert.ok((Number(end) - Number(start)) / 1e9 < 30, `the handler ran ${(Number(end) - Number(start)) / 1e9} s`);
  await waitFor(() => page.evaluate((id) => document.querySelector(`#jobs tr[data-job="${id}"]`)?.dataset.state === 'canceled', id), { what: 'the job shown canceled' });
  assert.match(await page.textContent(`#jobs tr[data-job="${id}"]`), /canceled/);
  assert.match(await page.textContent('#job-msg'), /cancel of .* requested/);
  await waitShown('jobs-canceled', 1, 'one job canceled');
  assert.equal(w.exitCode, null, 'the worker process runs on:\n' + wlog);
  console.log(`# cancel clicked -> handler ended on the worker and the page showed canceled: ${Date.now() - t0} ms`);
});

test('dashboard: hostile names are shown as text, never run', async () => {
  const evil = '<img src=x onerror="window.pwned=1">';
  const res = await fetch(`${srv.url}/v1/channels/x/messages`, { method: 'POST', headers: { Authorization: 'Bearer ' + token(evil, ['--publish', '>']) }, body: '1' });
  assert.equal(res.status, 201);
  const sse = await sseClient(evil, 'x');
  await waitFor(() => page.evaluate((e) => [...document.querySelectorAll('#conn-users tbody tr')].some((tr) => tr.dataset.user === e && tr.firstChild.textContent === e), evil), { what: 'the hostile user id shown as text' });
  assert.equal(await page.evaluate(() => window.pwned), undefined);
  assert.equal(await page.$$eval('#dash img', (x) => x.length), 0);
  sse.destroy();
});

// screenshots writes the page at desktop and phone sizes, with some
// traffic on it.
async function screenshots() {
  const before = Number(await shown('conn-total')); // the worker's
  const open = [await wsClient('ann'), await wsClient('ann'), await sseClient('bob'), await tcpClient('cid')];
  await waitShown('conn-total', before + 4, 'four more connections for the screenshot');
  // Some traffic, so that the channel shows a rate.
  const pub = token('eve', ['--publish', '>']);
  let n = 0;
  const ticker = setInterval(() => {
    fetch(`${srv.url}/v1/channels/room.lobby/messages`, { method: 'POST', headers: { Authorization: 'Bearer ' + pub }, body: JSON.stringify({ n: n++ }) }).catch(() => {});
  }, 50);
  await waitFor(() => page.evaluate(() => /^[1-9]/.test(document.querySelector('#channels tr[data-channel="room.lobby"] td:nth-child(3)')?.textContent ?? '')), { what: 'a rate on room.lobby' });
  // The desktop one shows the whole page; the phone one its first screen.
  for (const [w, h, name, fullPage] of [[1280, 800, 'dashboard-desktop.png', true], [390, 844, 'dashboard-phone.png', false]]) {
    await page.setViewportSize({ width: w, height: h });
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: join(SHOTS, name), fullPage });
  }
  clearInterval(ticker);
  await page.setViewportSize({ width: 1280, height: 800 });
  open[0].close();
  open[1].close();
  open[2].destroy();
  open[3].resetAndDestroy();
  await waitShown('conn-total', before, 'screenshot clients gone');
}

test('dashboard: in open mode the page needs no token', async () => {
  const data = tempDir('tether-dash-open-');
  const open = await startTether({ data: data.dir });
  const p = await context.newPage();
  try {
    await p.goto(open.url + '/admin');
    await p.waitForSelector('#dash', { state: 'visible' });
    await waitFor(async () => (await p.getAttribute('#status', 'data-state')) === 'live', { what: 'the live stream in open mode' });
    assert.equal(await p.isVisible('#login'), false);
    assert.equal(await p.isVisible('#logout'), false, 'nothing to log out of');
    assert.match(await p.textContent('#process'), /open \(no tokens\)/);
    assert.equal(await p.evaluate(() => sessionStorage.length), 0);
  } finally {
    await p.close();
    await open.kill('SIGKILL');
    data.cleanup();
  }
});
