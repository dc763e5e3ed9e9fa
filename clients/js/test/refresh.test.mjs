// Token refresh on a live WebSocket: tether runs with a token secret, and the
// client's getToken mints HS256 tokens (signed here with node's crypto) that
// live about 3 s. The client refreshes each before it expires, so one
// connection outlives several tokens; a refused refresh makes it reconnect
// with a fresh token instead, resuming by cursor.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Client } from '../dist/index.js';
import { startTether, tempDir, waitFor } from './helpers.mjs';

const SECRET = 'a-test-secret-of-more-than-32-bytes-0123456789';
let srv, tmp;

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');

/** sign makes an HS256 token for sub, living ttl seconds. */
function sign(sub, ttl, perms) {
  const now = Math.floor(Date.now() / 1000);
  const head = b64url({ alg: 'HS256', typ: 'JWT' }) + '.' + b64url({ sub, iat: now, exp: now + ttl, tether: perms });
  return head + '.' + createHmac('sha256', SECRET).update(head).digest('base64url');
}

const rw = { subscribe: ['room.>'], publish: ['room.>'] };
const admin = () => ({ Authorization: 'Bearer ' + sign('root', 60, { admin: true, subscribe: ['>'], publish: ['>'] }) });

async function wsConnections(sub) {
  const r = await fetch(`${srv.url}/v1/connections`, { headers: admin() });
  assert.equal(r.status, 200);
  return (await r.json()).connections.filter((c) => c.transport === 'websocket' && c.sub === sub).map((c) => c.id);
}

before(async () => {
  tmp = tempDir();
  const secretFile = join(tmp.dir, 'secret');
  writeFileSync(secretFile, SECRET);
  srv = await startTether({ data: join(tmp.dir, 'data'), args: ['--token-secret-file', secretFile] });
});

after(async () => {
  await srv?.kill('SIGKILL');
  tmp?.cleanup();
});

test('websocket: 3 s tokens are refreshed, one connection lives 8 s and keeps receiving', async () => {
  let calls = 0;
  const c = new Client({ url: srv.url, transports: ['websocket'], getToken: () => (calls++, sign('alice', 3, rw)) });
  const states = [];
  const errors = [];
  c.on('state', (s) => states.push(s));
  c.on('error', (e) => errors.push(e));
  try {
    const sub = c.subscribe('room.refresh', { after: '0' });
    const got = [];
    sub.on('message', (m) => got.push(m.data.n));
    await sub.ready();
    const conns = await wsConnections('alice');
    assert.equal(conns.length, 1);
    const start = Date.now();
    let n = 0;
    while (Date.now() - start < 8000) {
      await c.publish('room.refresh', { n: ++n });
      await new Promise((r) => setTimeout(r, 200));
    }
    await waitFor(() => got.length === n, { what: `${n} messages`, timeout: 5000 });
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1));
    assert.deepEqual(await wsConnections('alice'), conns, 'the connection was never replaced');
    assert.equal(c.state, 'connected');
    assert.deepEqual(states.filter((s) => s.state !== 'connected' || s.previous !== 'connecting').map((s) => [s.state, s.reason, s.code]), [], 'no state change after connecting');
    assert.equal(states.filter((s) => s.state === 'connected').length, 1);
    assert.deepEqual(errors, []);
    assert.ok(calls >= 4, `getToken called ${calls} times: one per connection and one per refresh (8 s / ~2 s)`);
  } finally {
    c.close();
  }
});

test('websocket: a refused refresh reconnects with a fresh token, delivery stays exact', async () => {
  let calls = 0;
  // The second token is for another user: the server refuses that refresh (forbidden).
  const c = new Client({ url: srv.url, transports: ['websocket'], minReconnectDelay: 50, maxReconnectDelay: 200, getToken: () => (++calls === 2 ? sign('mallory', 30, rw) : sign('bob', 3, rw)) });
  const states = [];
  c.on('state', (s) => states.push(s));
  try {
    const sub = c.subscribe('room.refused', { after: '0' });
    const got = [];
    sub.on('message', (m) => got.push(m.data.n));
    await sub.ready();
    let n = 0;
    const start = Date.now();
    while (Date.now() - start < 5000) {
      await c.publish('room.refused', { n: ++n });
      await new Promise((r) => setTimeout(r, 100));
    }
    await waitFor(() => got.length >= n, { what: `${n} messages`, timeout: 5000 });
    assert.deepEqual(got, Array.from({ length: n }, (_, i) => i + 1));
    const refused = states.find((s) => s.reason === 'token-refresh');
    assert.ok(refused, 'the refused refresh ended the connection: ' + JSON.stringify(states.map((s) => [s.state, s.reason, s.code])));
    assert.equal(refused.code, 'forbidden');
    assert.equal(states.filter((s) => s.reason === 'server-error').length, 0, 'no token_expired');
    assert.equal(c.state, 'connected');
    assert.ok(calls >= 4, `getToken called ${calls} times`);
  } finally {
    c.close();
  }
});

test('worker: 3 s tokens are refreshed, a job running 7 s keeps its one attempt and its connection', async () => {
  const { Worker } = await import('../dist/worker.js');
  let calls = 0;
  const w = new Worker({ url: srv.url, id: 'refresher', getToken: () => (calls++, sign('wk', 3, { worker: ['slow'] })) });
  const states = [];
  w.on('state', (s) => states.push(s));
  w.handle('slow', async (_payload, ctx) => {
    const start = Date.now();
    while (Date.now() - start < 7000) {
      if (ctx.signal.aborted) throw ctx.signal.reason;
      await new Promise((r) => setTimeout(r, 100));
    }
    return { ran: Date.now() - start };
  });
  w.start();
  try {
    await waitFor(() => states.some((s) => s.state === 'connected'), { what: 'the worker connected', timeout: 10000 });
    const conns = await wsConnections('wk');
    assert.equal(conns.length, 1);
    const r = await fetch(`${srv.url}/v1/jobs?wait=30s`, { method: 'POST', headers: { Authorization: 'Bearer ' + sign('root', 60, { jobs: ['slow'] }), 'Content-Type': 'application/json' }, body: JSON.stringify({ type: 'slow' }) });
    assert.equal(r.status, 200);
    const job = await r.json();
    assert.equal(job.state, 'succeeded', JSON.stringify(job));
    assert.equal(job.attempt, 1, 'one attempt: the connection was never lost');
    assert.deepEqual(await wsConnections('wk'), conns, 'the connection was never replaced');
    assert.deepEqual(states.filter((s) => s.state !== 'connected').map((s) => [s.state, s.reason]), [['connecting', 'connect']]);
    assert.ok(calls >= 3, `getToken called ${calls} times: one to connect and one per refresh`);
  } finally {
    await w.stop({ grace: 0 });
  }
});
