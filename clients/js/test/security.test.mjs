// Access control in headless Chromium (Debian's, driven by playwright-core):
// tether runs with a token secret and --allowed-origins naming one page
// origin, http://127.0.0.1:P. The same page server reached as
// http://localhost:P is another origin (and another site). A page on the
// allowed origin uses publish, long-poll, SSE and WebSocket with a token;
// the other origin is refused (CORS, the WebSocket Origin check), and its
// no-cors form and text/plain POSTs, which a browser sends without asking,
// store nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { TETHER_BIN, startTether, tempDir } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const pkg = fileURLToPath(new URL('..', import.meta.url));

let srv, tmp, pages, context, page, profile, secretFile, pagePort;

/** token signs a development token with `tether token`. */
function token(sub, flags = []) {
  return execFileSync(TETHER_BIN, ['token', '--secret-file', secretFile, '--sub', sub, '--ttl', '10m', ...flags], { encoding: 'utf8' }).trim();
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/deps.sh`);
  tmp = tempDir();
  secretFile = join(tmp.dir, 'secret');
  writeFileSync(secretFile, 'a-test-secret-of-more-than-32-bytes-0123456789');
  // The page server: the test page and the built SDK. It listens on every
  // address, so that 127.0.0.1:P and localhost:P both reach it.
  pages = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = path === '/' ? join(pkg, 'test/browser/index.html') : path.startsWith('/dist/') ? join(pkg, path) : null;
    if (!file || !file.startsWith(pkg) || !existsSync(file)) return res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': file.endsWith('.html') ? 'text/html' : 'text/javascript', 'Cache-Control': 'no-store' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => pages.listen(0, r));
  pagePort = pages.address().port;
  const data = join(tmp.dir, 'data');
  srv = await startTether({ data, args: ['--token-secret-file', secretFile, '--allowed-origins', `http://127.0.0.1:${pagePort}`] });
  profile = mkdtempSync(join(tmpdir(), 'tether-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.error('page error:', e));
});

after(async () => {
  await context?.close();
  await srv?.kill('SIGKILL');
  await new Promise((r) => (pages ? pages.close(r) : r()));
  tmp?.cleanup();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/**
 * read returns the data of every message of channel, read with a token from
 * Node, following the cursor as a client does (a page may be a snapshot up
 * to a second old, so one read can stop short).
 */
async function read(channel) {
  const auth = { Authorization: 'Bearer ' + token('checker', ['--subscribe', '>']) };
  const out = [];
  for (let after = '0'; ; ) {
    const r = await fetch(`${srv.url}/v1/channels/${channel}/messages?after=${after}&wait=2s`, { headers: auth });
    assert.equal(r.status, 200);
    const page = await r.json();
    if (page.messages.length === 0) return out;
    out.push(...page.messages.map((m) => m.data));
    after = page.next;
  }
}

test('browser, allowed origin: publish, long-poll, SSE and WebSocket with a token', async () => {
  await page.goto(`http://127.0.0.1:${pagePort}/`);
  await page.waitForFunction(() => window.pageReady === true);
  const tok = token('alice', ['--subscribe', 'room.*', '--publish', 'room.*']);
  const out = await page.evaluate(async ({ base, tok }) => {
    const out = {};
    let r = await fetch(base + '/v1/channels/room.1/messages', {
      method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + tok }, body: JSON.stringify({ n: 1 }),
    });
    out.publish = r.status;
    r = await fetch(base + '/v1/channels/room.1/messages?after=0&wait=0', { headers: { Authorization: 'Bearer ' + tok } });
    out.poll = (await r.json()).messages.map((m) => m.data.n);
    r = await fetch(base + '/v1/channels/other/messages?after=0&wait=0', { headers: { Authorization: 'Bearer ' + tok } });
    out.forbidden = [r.status, (await r.json()).error.code];
    out.sse = await new Promise((res, rej) => {
      const es = new EventSource(base + '/v1/channels/room.1/events?after=0&token=' + encodeURIComponent(tok));
      es.onmessage = (e) => (es.close(), res(JSON.parse(e.data).n));
      es.onerror = () => (es.close(), rej(new Error('EventSource failed')));
    });
    // The token as a subprotocol: the server selects "tether", and the token stays out of the URL.
    out.subprotocol = await new Promise((res) => {
      const ws = new WebSocket(base.replace('http:', 'ws:') + '/v1/ws', ['tether', 'tether.token.' + tok]);
      ws.onmessage = (e) => (ws.close(), res([ws.protocol, JSON.parse(e.data).type]));
      ws.onopen = () => ws.send(JSON.stringify({ id: 's', type: 'subscribe', channel: 'room.1', after: '0' }));
      ws.onerror = () => res('refused');
    });
    const c = new window.tether.Client({ url: base, transports: ['websocket'], getToken: () => tok });
    const sub = c.subscribe('room.1', { after: '0' });
    const got = [];
    sub.on('message', (m) => got.push(m.data.n));
    await sub.ready();
    await c.publish('room.1', { n: 2 });
    await window.until(() => got.includes(2), 10000, 'the WebSocket message');
    out.ws = got;
    out.transport = c.transport;
    c.close();
    return out;
  }, { base: srv.url, tok });
  assert.deepEqual(out, { publish: 201, poll: [1], forbidden: [403, 'forbidden'], sse: 1, subprotocol: ['tether', 'reply'], ws: [1, 2], transport: 'websocket' });
});

test('browser, another origin: refused, and its no-cors POSTs store nothing', async () => {
  await page.goto(`http://localhost:${pagePort}/`);
  await page.waitForFunction(() => window.pageReady === true);
  const tok = token('alice', ['--subscribe', 'room.*', '--publish', 'room.*', '--jobs', '*']);
  const out = await page.evaluate(async ({ base, tok }) => {
    const out = {};
    try {
      await fetch(base + '/v1/channels/room.1/messages?after=0&wait=0', { headers: { Authorization: 'Bearer ' + tok } });
      out.fetch = 'read';
    } catch {
      out.fetch = 'refused'; // CORS: the preflight is refused
    }
    out.ws = await new Promise((res) => {
      const ws = new WebSocket(base.replace('http:', 'ws:') + '/v1/ws?token=' + encodeURIComponent(tok));
      ws.onopen = () => (ws.close(), res('open'));
      ws.onerror = () => res('refused');
    });
    const q = '?token=' + encodeURIComponent(tok);
    // What a hostile page can send without a preflight.
    await fetch(base + '/v1/channels/room.1/messages' + q, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: '{"n":666}' });
    await fetch(base + '/v1/jobs' + q, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: '{"type":"x"}' });
    await fetch(base + '/v1/channels/room.1/messages' + q, { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ n: '667' }) });
    const sink = document.createElement('iframe');
    sink.name = 'sink';
    document.body.appendChild(sink);
    const loaded = new Promise((r) => (sink.onload = r));
    const f = document.createElement('form');
    Object.assign(f, { method: 'POST', action: base + '/v1/channels/room.1/messages' + q, enctype: 'text/plain', target: 'sink' });
    const i = document.createElement('input');
    Object.assign(i, { name: '{"n":668,"x":"', value: '"}' });
    f.appendChild(i);
    document.body.appendChild(f);
    f.submit();
    await loaded;
    return out;
  }, { base: srv.url, tok });
  assert.deepEqual(out, { fetch: 'refused', ws: 'refused' });
  assert.deepEqual(await read('room.1'), [{ n: 1 }, { n: 2 }]);
  const r = await fetch(`${srv.url}/v1/jobs`, { headers: { Authorization: 'Bearer ' + token('ops', ['--admin']) } });
  assert.deepEqual((await r.json()).jobs, []);
});
