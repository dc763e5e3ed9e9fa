// The connection state machine against the real server: a server gone silent
// is noticed by the heartbeat bound; the shutdown hint is honoured; gaps are
// reported over every transport; publish idempotency, the offline queue and
// its bound; subscription errors.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client, TetherError } from '../dist/index.js';
import { nextEvent, startProxy, startTether, tempDir, waitFor } from './helpers.mjs';

const transports = [['websocket', ''], ['sse', '/nows'], ['longpoll', '/nosse']];
const routes = { '/nows': { blockWS: true }, '/nosse': { blockWS: true, blockSSE: true } };
const serverArgs = ['--sse-heartbeat', '500ms', '--heartbeat-interval', '500ms', '--retention-max-messages', '5', '--shutdown-spread', '1s', '--shutdown-grace', '3s'];
const fast = { minReconnectDelay: 50, maxReconnectDelay: 500, connectTimeout: 3000 };

let srv, tmp, proxy;
const clients = [];
before(async () => {
  tmp = tempDir();
  srv = await startTether({ data: tmp.dir, args: serverArgs });
  proxy = await startProxy(srv.port, { routes });
});
after(async () => {
  for (const c of clients) c.close();
  await proxy?.close();
  await srv?.kill('SIGKILL');
  tmp?.cleanup();
});
const client = (opts) => {
  const c = new Client(opts);
  clients.push(c);
  return c;
};

for (const [name, prefix] of transports.slice(0, 2)) {
  test(`${name}: a server that goes silent is dead after the heartbeat bound, and the client comes back`, async () => {
    const c = client({ url: proxy.url + prefix, heartbeatTimeout: 1500, sseHeartbeatTimeout: 1500, ...fast });
    const sub = c.subscribe('hb-' + name, { after: '0' });
    const got = [];
    sub.on('message', (m) => got.push(m.data));
    await sub.ready();
    assert.equal(c.transport, name);
    const dead = nextEvent(c, 'state', (s) => s.state === 'connecting');
    const t0 = Date.now();
    proxy.stall();
    const s = await dead;
    const took = Date.now() - t0;
    assert.equal(s.reason, 'heartbeat-timeout');
    assert.ok(took >= 1000 && took < 4000, `noticed after ${took} ms`);
    await c.ready();
    await sub.ready();
    await c.publish('hb-' + name, 'after');
    await waitFor(() => got.includes('after'), { what: 'a message after the reconnect' });
  });
}

for (const [name, prefix] of transports) {
  test(`${name}: trimmed history is reported as a gap, then what remains follows`, async () => {
    const ch = 'gap-' + name;
    const pub = client({ url: srv.url });
    const cursors = [];
    for (let i = 0; i < 12; i++) cursors.push((await pub.publish(ch, i)).cursor);
    const c = client({ url: proxy.url + prefix, ...fast });
    const sub = c.subscribe(ch, { after: cursors[1] });
    const events = [];
    sub.on('gap', (g) => events.push(['gap', g.after, g.earliest]));
    sub.on('message', (m) => events.push(m.data));
    await waitFor(() => events.length >= 6, { what: 'gap and 5 retained messages' });
    assert.equal(c.transport, name);
    assert.deepEqual(events, [['gap', cursors[1], cursors[7]], 7, 8, 9, 10, 11]);
  });
}

for (const [name, prefix] of transports) {
  test(`${name}: the server's shutdown hint is honoured, then the client resumes`, async () => {
    const c = client({ url: proxy.url + prefix, ...fast });
    const log = [];
    const tLog = Date.now();
    c.on('state', (x) => log.push(`${Date.now() - tLog}ms ${x.previous}->${x.state} ${x.reason} ${x.delay ?? ''}`));
    const ch = 'shutdown-' + name;
    const sub = c.subscribe(ch, { after: '0' });
    const got = [];
    sub.on('message', (m) => got.push(m.data));
    await sub.ready();
    // Stop only once the server holds this subscription.
    await waitFor(async () => {
      const r = await fetch(`${srv.url}/v1/connections`).then((r) => r.json());
      // For long-poll: the waiting poll, not the first one (which asks wait=0 and is answered at once).
      return r.connections.some((x) => x.transport === ({ websocket: 'websocket', sse: 'sse', longpoll: 'long-poll' })[name] && (x.channels ?? []).includes(ch) && (name !== 'longpoll' || x.age_ns > 2e8));
    }, { what: 'the server to hold the subscription' });
    const times = [];
    c.on('state', (x) => times.push({ at: Date.now(), x }));
    const port = srv.port;
    const stopped = srv.kill('SIGTERM'); // resolves once the server exited, after its grace
    try {
      await waitFor(() => times.length >= 2, { what: 'the shutdown and the next attempt' });
      const [down, next] = times;
      assert.equal(down.x.reason, 'shutdown', log.join(', '));
      assert.ok(down.x.delay >= 0 && down.x.delay <= 1000, `hinted delay ${down.x.delay} within --shutdown-spread`);
      // The next attempt waited for the hint (the server is still down then, so it fails and backs off).
      const waited = next.at - down.at;
      assert.ok(waited >= down.x.delay - 20, `the next attempt came after ${waited} ms, before the hinted ${down.x.delay} ms: ${log.join(', ')}`);
    } finally {
      await stopped;
      srv = await startTether({ data: tmp.dir, port, args: serverArgs }); // also when an assertion failed: the next tests need it
    }
    await c.ready();
    await c.publish(ch, 'back');
    await waitFor(() => got.includes('back'), { what: 'a message after the restart' });
  });
}

test('publish: the same idempotency key appends once', async () => {
  const c = client({ url: srv.url });
  const a = await c.publish('idem', { v: 1 }, { idempotencyKey: 'key-1' });
  const b = await c.publish('idem', { v: 2 }, { idempotencyKey: 'key-1' });
  assert.equal(b.cursor, a.cursor);
  assert.equal(b.duplicate, true);
  assert.equal(a.duplicate, false);
});

test('publish: offline queue is bounded, sent in order on connect; an aborted queued publish is not sent', async () => {
  const c = client({ url: srv.url, autoConnect: false, maxQueuedPublishes: 3 });
  const ac = new AbortController();
  const p1 = c.publish('queue', 1);
  const p2 = c.publish('queue', 2, { signal: ac.signal });
  const p3 = c.publish('queue', 3);
  await assert.rejects(c.publish('queue', 4), (e) => e instanceof TetherError && e.code === 'queue_full');
  ac.abort();
  await assert.rejects(p2, (e) => e.name === 'AbortError');
  assert.equal(c.queuedPublishes, 2);
  c.connect();
  const [a1, a3] = await Promise.all([p1, p3]);
  const r = await fetch(`${srv.url}/v1/channels/queue/messages?after=0`).then((r) => r.json());
  assert.deepEqual(r.messages.map((m) => [m.id, m.data]), [[a1.cursor, 1], [a3.cursor, 3]]);
});

test('subscribe: a server error ends the subscription with its code', async () => {
  const c = client({ url: srv.url });
  const sub = c.subscribe('bad channel!', { after: '0' });
  const err = await nextEvent(sub, 'error');
  assert.equal(err.code, 'bad_channel');
  assert.equal(sub.state, 'unsubscribed');
  await assert.rejects(sub.ready(), (e) => e.code === 'bad_channel');
});

test('websocket: an operator kick is reported with the server\'s code, and the client comes back', async () => {
  const c = client({ url: srv.url, ...fast });
  const ch = 'kick';
  const sub = c.subscribe(ch, { after: '0' });
  await sub.ready();
  const conn = await waitFor(async () => {
    const r = await fetch(`${srv.url}/v1/connections`).then((r) => r.json());
    return r.connections.find((x) => x.transport === 'websocket' && (x.channels ?? []).includes(ch));
  }, { what: 'the connection listed' });
  const down = nextEvent(c, 'state', (s) => s.state === 'connecting');
  await fetch(`${srv.url}/v1/connections/${conn.id}/close?mode=close`, { method: 'POST' });
  const s = await down;
  assert.deepEqual([s.reason, s.code], ['server-error', 'kicked']);
  await c.ready();
  await sub.ready();
});
