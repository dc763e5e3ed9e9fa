// Test helpers: a real tether process, a proxy that can refuse transports,
// and waiting on conditions with deadlines (never a bare sleep).
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TETHER_BIN = process.env.TETHER_BIN;
export const WORKER_BIN = process.env.TETHER_WORKER_BIN;
if (!TETHER_BIN) throw new Error('TETHER_BIN is not set: run the tests with `npm test`');

/** tempDir makes a directory removed by the returned cleanup. */
export function tempDir(prefix = 'tether-js-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * startTether runs the real server on 127.0.0.1 (port 0 unless given) and
 * resolves once it logged "listening addr=...".
 */
export function startTether({ data, port = 0, args = [] } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(TETHER_BIN, ['serve', '--addr', `127.0.0.1:${port}`, '--data', data, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    const exited = new Promise((res) => p.once('exit', (code, sig) => res({ code, sig })));
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error('tether did not start within 20 s:\n' + log));
    }, 20_000);
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (s) => {
      log += s;
      const m = /listening addr=127\.0\.0\.1:(\d+)/.exec(log);
      if (m && timer) {
        clearTimeout(timer);
        const prt = Number(m[1]);
        resolve({
          proc: p,
          port: prt,
          url: `http://127.0.0.1:${prt}`,
          log: () => log,
          exited,
          async kill(sig = 'SIGKILL') {
            if (p.exitCode === null && p.signalCode === null) p.kill(sig);
            return exited;
          },
        });
      }
    });
    p.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`tether exited (${code}) before listening:\n${log}`));
    });
  });
}

/** waitFor polls cond until it returns a truthy value or the deadline passes. */
export async function waitFor(cond, { timeout = 20_000, interval = 10, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** nextEvent resolves with the first event `ev` of emitter for which pred holds. */
export function nextEvent(emitter, ev, pred = () => true, timeout = 20_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      reject(new Error(`no ${ev} event within ${timeout} ms`));
    }, timeout);
    const off = emitter.on(ev, (x) => {
      if (!pred(x)) return;
      clearTimeout(t);
      off();
      resolve(x);
    });
  });
}

/**
 * startProxy forwards HTTP and WebSocket upgrades to the target port, as a
 * proxy between a client and tether would. blockWS answers upgrades with 403;
 * blockSSE answers SSE streams with 403. The page server of the browser tests
 * uses `routes`: path prefixes with their own blocking (stripped before
 * forwarding), and `serve` for static files. It records what it saw (paths,
 * headers) and can drop every connection at once.
 */
export function startProxy(targetPort, { blockWS = false, blockSSE = false, routes = {}, serve } = {}) {
  const seen = [];
  const sockets = new Set();
  const upstreams = new Set();
  const target = { port: targetPort };
  const route = (url) => {
    for (const [prefix, r] of Object.entries(routes)) {
      if (url.startsWith(prefix + '/')) return { ...r, path: url.slice(prefix.length) };
    }
    return { blockWS, blockSSE, path: url };
  };
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers, upgrade: false });
    if (serve && serve(req, res)) return;
    const r = route(req.url);
    if (r.blockSSE && /\/events(\?|$)/.test(r.path)) {
      res.writeHead(403, { 'Content-Type': 'text/html' });
      res.end('<h1>SSE not allowed here</h1>');
      return;
    }
    const up = http.request({ host: '127.0.0.1', port: target.port, method: req.method, path: r.path, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.statusMessage, ur.headers);
      res.flushHeaders();
      ur.pipe(res);
      upstreams.add(ur);
      ur.on('close', () => upstreams.delete(ur));
      ur.on('error', () => res.destroy());
    });
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'Content-Type': 'text/plain' });
      res.end('bad gateway');
    });
    res.on('close', () => up.destroy());
    req.pipe(up);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req, sock, head) => {
    seen.push({ method: req.method, url: req.url, headers: req.headers, upgrade: true });
    const r = route(req.url);
    if (r.blockWS) {
      sock.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nforbidden');
      return;
    }
    const up = net.connect(target.port, '127.0.0.1', () => {
      let h = `${req.method} ${r.path} HTTP/1.1\r\n`;
      for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
      up.write(h + '\r\n');
      if (head.length) up.write(head);
      sock.pipe(up).pipe(sock);
    });
    sockets.add(up);
    up.on('close', () => sockets.delete(up));
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
    sock.on('close', () => up.destroy());
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      resolve({
        port,
        url: `http://127.0.0.1:${port}`,
        seen,
        target,
        /** stall stops forwarding on every open connection, both ways: to the client, a server that went silent. */
        stall() {
          for (const s of [...sockets, ...upstreams]) {
            s.unpipe();
            s.pause();
          }
        },
        /** dropAll resets every connection through the proxy (clients see a network failure). */
        dropAll() {
          for (const s of sockets) s.destroy();
        },
        async close() {
          for (const s of sockets) s.destroy();
          server.closeAllConnections();
          await new Promise((r) => server.close(r));
        },
      });
    });
  });
}

/** percentile of a sorted array (nearest rank). */
export function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** startWorker forks the worker fixture (test/fixtures/node-worker.mjs) against url; its IPC messages are kept in order, waitMsg finds one. */
export async function startWorker(url, children, env = {}) {
  const w = fork(fileURLToPath(new URL('./fixtures/node-worker.mjs', import.meta.url)), {
    env: { ...process.env, TETHER_URL: url, ...env },
    execArgv: process.execArgv,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(w);
  const msgs = [];
  const waiters = new Set();
  w.on('message', (m) => {
    m.at = performance.now();
    msgs.push(m);
    for (const f of waiters) f(m);
  });
  const waitMsg = (pred, timeout = 20_000) => {
    const m = msgs.find(pred);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => (waiters.delete(f), reject(new Error('worker message not seen within ' + timeout + ' ms'))), timeout);
      const f = (x) => {
        if (!pred(x)) return;
        clearTimeout(t);
        waiters.delete(f);
        resolve(x);
      };
      waiters.add(f);
    });
  };
  await waitMsg((m) => m.ev === 'state' && m.state === 'connected');
  return { proc: w, msgs, waitMsg };
}

