// The README's quick starts run as written: the Node quick start (with the Go
// example worker serving its job) and the Node worker example.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '../dist/index.js';
import { WORKER_BIN, startTether, tempDir } from './helpers.mjs';

const pkg = fileURLToPath(new URL('..', import.meta.url));
let srv, tmp;
const procs = [];
before(async () => {
  tmp = tempDir();
  srv = await startTether({ data: tmp.dir });
});
after(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await srv?.kill('SIGKILL');
  tmp?.cleanup();
});

/** run starts a process in clients/js and collects its output; done resolves with its exit. */
function run(cmd, args, env = {}) {
  const p = spawn(cmd, args, { cwd: pkg, env: { ...process.env, TETHER_URL: srv.url, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(p);
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  const done = new Promise((resolve) => p.once('exit', (code, signal) => resolve({ code, signal, out })));
  return { p, done, out: () => out };
}

test('README: the Node quick start runs as written', async () => {
  const w = run(WORKER_BIN, ['--url', srv.url.replace('http', 'ws'), '--concurrency', '2']);
  const q = run(process.execPath, [...process.execArgv, 'examples/node-quickstart.mjs']);
  const r = await q.done;
  w.p.kill('SIGTERM');
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /published, durable at cursor \d+/);
  assert.match(r.out, /received \d+ \{"title":"hello from node"\}/);
  assert.match(r.out, /job result \{"slept_ms":200\}/);
});

test('README: the Node worker example runs jobs and stops cleanly', async () => {
  const w = run(process.execPath, [...process.execArgv, 'examples/node-worker.mjs']);
  const c = new Client({ url: srv.url });
  try {
    const steps = [];
    const r = await c.jobs.run('resize', { src: 'a.png' }, { onProgress: (p) => steps.push(p.step) });
    assert.deepEqual(r, { resized: 'a.png' });
    assert.deepEqual(steps, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  } finally {
    c.close();
  }
  w.p.kill('SIGTERM');
  const e = await w.done;
  assert.equal(e.code, 0, e.out);
  assert.match(e.out, /worker connected connected/);
  assert.match(e.out, /worker stopped stop/);
});
