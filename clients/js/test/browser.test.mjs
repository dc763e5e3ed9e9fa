// The SDK in headless Chromium (Debian's, driven by playwright-core): the
// page is served same-origin by a test server that also proxies /v1/* (and
// the WebSocket upgrade) to a real tether. Under /nows the proxy refuses
// WebSocket upgrades, under /nosse SSE streams too.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startProxy, startTether, startWorker, tempDir } from './helpers.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const pkg = fileURLToPath(new URL('..', import.meta.url));
const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.map': 'application/json' };

function serve(req, res) {
  const path = new URL(req.url, 'http://x').pathname;
  let file;
  if (path === '/') file = join(pkg, 'test/browser/index.html');
  else if (path.startsWith('/dist/')) file = join(pkg, normalize(path));
  else if (path.startsWith('/page/')) file = join(pkg, 'test/browser', normalize(path.slice(6)));
  else return false;
  if (!file.startsWith(pkg) || !existsSync(file)) {
    res.writeHead(404).end();
    return true;
  }
  res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
  res.end(readFileSync(file));
  return true;
}

let srv, tmp, web, context, page, profile;
const children = [];
before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: run scripts/deps.sh`);
  tmp = tempDir();
  srv = await startTether({ data: tmp.dir, args: ['--sse-heartbeat', '1s', '--job-follow-grace', '1s'] });
  web = await startProxy(srv.port, { routes: { '/nows': { blockWS: true }, '/nosse': { blockWS: true, blockSSE: true } }, serve });
  profile = mkdtempSync(join(tmpdir(), 'tether-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(web.url + '/');
  await page.waitForFunction(() => window.pageReady === true);
});
after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await context?.close();
  await web?.close();
  await srv?.kill('SIGKILL');
  tmp?.cleanup();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

for (const [prefix, transport] of [['', 'websocket'], ['/nows', 'sse'], ['/nosse', 'longpoll']]) {
  test(`browser, ${transport}: subscribe and publish, connections dropped mid-stream, nothing lost or repeated`, async () => {
    const channel = 'browser-' + transport;
    await page.evaluate(async ({ prefix, channel }) => {
      const { Client } = window.tether;
      const c = new Client({ url: location.origin + prefix, minReconnectDelay: 100, maxReconnectDelay: 1000 });
      const sub = c.subscribe(channel, { after: '0' });
      const got = [];
      sub.on('message', (m) => got.push(m.data.n));
      window.run = { c, got, acks: [] };
      await sub.ready();
      (async () => {
        for (let n = 0; n < 200; n++) {
          window.run.acks.push(c.publish(channel, { n }));
          await new Promise((r) => setTimeout(r, 3));
        }
      })();
    }, { prefix, channel });
    await page.waitForFunction(() => window.run.got.length >= 50);
    web.dropAll(); // every connection of the page resets mid-stream
    await page.waitForFunction(() => window.run.got.length >= 200 && window.run.acks.length === 200, null, { timeout: 30_000 });
    const r = await page.evaluate(async () => {
      await Promise.all(window.run.acks);
      const t = window.run.c.transport;
      window.run.c.close();
      return { got: window.run.got, transport: t };
    });
    assert.equal(r.transport, transport);
    assert.deepEqual(r.got, Array.from({ length: 200 }, (_, i) => i));
  });
}

test('browser: offline and online events move the state machine', async () => {
  await page.evaluate(async () => {
    const c = new window.tether.Client({ minReconnectDelay: 100, maxReconnectDelay: 1000 });
    window.net = { c, states: [] };
    c.on('state', (s) => window.net.states.push(`${s.state}:${s.reason}`));
    await c.ready();
  });
  await context.setOffline(true);
  await page.waitForFunction(() => window.net.states.includes('connecting:offline'));
  await context.setOffline(false);
  await page.waitForFunction(() => window.net.c.state === 'connected');
  const states = await page.evaluate(() => (window.net.c.close(), window.net.states));
  assert.deepEqual(states.slice(0, 2), ['connected:connected', 'connecting:offline']);
  assert.ok(states.includes('connecting:online'), states.join(', '));
  assert.equal(states.at(-1), 'disconnected:disconnect');
});

test('browser: a wasm job in a Web Worker is cancelled without terminating the worker or losing its data', async (t) => {
  const r = await page.evaluate(async () => {
    const msgs = [];
    const ww = new Worker('/page/wasm-worker.mjs', { type: 'module' });
    ww.onmessage = (e) => msgs.push({ ...e.data, at: performance.now() });
    ww.onerror = (e) => msgs.push({ ev: 'error', message: e.message });
    const seen = (pred, what) => window.until(() => msgs.find(pred), 20000, what);
    await seen((m) => m.ev === 'state' && m.state === 'connected', 'the Web Worker connected');
    const c = new window.tether.Client();
    const lat = [];
    const stopLat = [];
    const errors = [];
    for (let i = 0; i < 20; i++) {
      const ac = new AbortController();
      let progressed = 0;
      // ~2e9 steps of ~4 ns: minutes of work unless cancelled.
      const run = c.jobs.run('wasm-sum', { steps: 2_000_000_000, slice: 250_000 }, { signal: ac.signal, onProgress: () => progressed++ });
      const started = await seen((m) => m.ev === 'started' && !msgs.some((x) => x.ev === 'aborted' && x.job === m.job), 'a started job');
      await window.until(() => progressed > 0, 20000, 'progress');
      const t0 = performance.now();
      ac.abort();
      try {
        await run;
      } catch (e) {
        errors.push(e.name);
      }
      const ab = await seen((m) => m.ev === 'aborted' && m.job === started.job, 'the abort in the worker');
      const st = await seen((m) => m.ev === 'stopped' && m.job === started.job, 'the computation stopping');
      lat.push(ab.at - t0);
      stopLat.push(st.at - t0);
    }
    // The same worker, with the same wasm instance and data, runs the next job.
    const res = await c.jobs.run('wasm-sum', { steps: 100_000, slice: 30_000 });
    const data = new Int32Array(16384).map((_, k) => k * 7 + 3);
    let acc = 0;
    for (let i = 0; i < 100_000; i++) acc = (Math.imul(acc, 31) + data[i & 16383]) | 0;
    const loaded = msgs.filter((m) => m.ev === 'loaded');
    ww.terminate();
    c.close();
    return { lat, stopLat, errors, res, expected: acc, loaded, workerErrors: msgs.filter((m) => m.ev === 'error') };
  });
  assert.deepEqual(r.workerErrors, []);
  assert.deepEqual(r.errors, Array(20).fill('AbortError'));
  assert.equal(r.loaded.length, 1, 'the wasm module was loaded once');
  assert.equal(r.res.instanceId, r.loaded[0].instanceId, 'the same Web Worker ran the next job');
  assert.equal(r.res.loads, 1);
  assert.equal(r.res.acc, r.expected, 'the loaded data is intact');
  const sorted = r.lat.slice().sort((a, b) => a - b);
  const stopSorted = r.stopLat.slice().sort((a, b) => a - b);
  t.diagnostic(`browser abort -> Web Worker signal over 20 runs: median ${sorted[10].toFixed(1)} ms, max ${sorted.at(-1).toFixed(1)} ms; computation stopped: median ${stopSorted[10].toFixed(1)} ms, max ${stopSorted.at(-1).toFixed(1)} ms`);
  assert.ok(sorted.at(-1) < 500, `max ${sorted.at(-1)} ms`);
});

test('browser: a closed tab cancels its jobs.run job (on_disconnect: cancel), and the worker is told', async (t) => {
  const w = await startWorker(srv.url, children);
  t.after(() => w.proc.kill('SIGKILL'));
  const tab = await context.newPage();
  await tab.goto(web.url + '/');
  await tab.waitForFunction(() => window.pageReady === true);
  await tab.evaluate(() => {
    window.c = new window.tether.Client();
    window.c.jobs.run('spin', null).catch(() => {});
  });
  const started = await w.waitMsg((m) => m.ev === 'started');
  // The tab follows the job once its subscription to job.<id> is answered (one round trip after the create).
  await tab.waitForFunction((id) => window.c.subscription('job.' + id)?.state === 'subscribed', started.job);
  await tab.close(); // its WebSocket, which followed job.<id>, goes with it
  // After the server's follow grace (1 s here) the job is cancelled with reason client-gone.
  const ab = await w.waitMsg((m) => m.ev === 'aborted' && m.job === started.job);
  assert.equal(ab.reason, 'client-gone');
  const job = await fetch(`${srv.url}/v1/jobs/${started.job}`).then((r) => r.json());
  assert.equal(job.cancel_reason, 'client-gone');
});

test('README: the browser quick start runs as written (examples/serve.mjs + examples/index.html)', async (t) => {
  const { spawn } = await import('node:child_process');
  const p = spawn(process.execPath, ['examples/serve.mjs'], { cwd: pkg, env: { ...process.env, PORT: '0', TETHER_URL: srv.url }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(p);
  t.after(() => p.kill('SIGKILL'));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) resolve(m[1]);
    });
    p.once('exit', () => reject(new Error('serve.mjs exited: ' + out)));
  });
  const tab = await context.newPage();
  t.after(() => tab.close());
  await tab.goto(url + '/');
  await tab.waitForFunction(() => /published at \d+/.test(document.getElementById('log').textContent) && /hello from the browser/.test(document.getElementById('log').textContent));
  const text = await tab.evaluate(() => document.getElementById('log').textContent);
  assert.match(text, /state connected \(connected\) over websocket/);
});
