// SIGKILL and restart the server mid-stream (same data dir, same port) while a
// publisher keeps publishing: the consumer sees every message exactly once, in
// order, over each transport. WebSocket is refused by a proxy for the SSE and
// long-poll runs (and SSE too for long-poll), so these are also the fallback
// tests: the client must find its way down and still lose nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Client } from '../dist/index.js';
import { startProxy, startTether, tempDir, waitFor } from './helpers.mjs';

const serverArgs = ['--sse-heartbeat', '1s'];
const fast = { minReconnectDelay: 100, maxReconnectDelay: 1000, connectTimeout: 3000 };

for (const mode of ['websocket', 'sse', 'longpoll']) {
  test(`SIGKILL + restart mid-stream, ${mode}: every message exactly once, in order`, async (t) => {
    const tmp = tempDir();
    let srv = await startTether({ data: tmp.dir, args: serverArgs });
    const port = srv.port;
    const proxy = await startProxy(port, { blockWS: mode !== 'websocket', blockSSE: mode === 'longpoll' });
    const clients = [];
    t.after(async () => {
      for (const c of clients) c.close();
      await proxy.close();
      await srv.kill('SIGKILL');
      tmp.cleanup();
    });

    const channel = 'restart-' + mode;
    const states = [];
    const consumer = new Client({ url: proxy.url, getToken: () => 'tok-consumer', session: 'consumer-' + mode, sseHeartbeatTimeout: 4000, ...fast });
    const publisher = new Client({ url: proxy.url, getToken: () => 'tok-publisher', ...fast });
    clients.push(consumer, publisher);
    consumer.on('state', (s) => states.push(`${s.previous}->${s.state}:${s.reason}`));

    const got = [];
    const sub = consumer.subscribe(channel, { after: '0' });
    sub.on('message', (m) => got.push(m.data.n));
    await sub.ready();
    await publisher.ready();
    assert.equal(consumer.transport, mode);
    // The publisher subscribes to nothing, so it never learns that SSE is blocked: its publishes are POSTs either way.
    assert.equal(publisher.transport, mode === 'longpoll' ? 'sse' : mode);

    const N = 400;
    const acks = [];
    let killedAt = -1;
    const publishing = (async () => {
      for (let n = 0; n < N; n++) {
        acks.push(publisher.publish(channel, { n }));
        await new Promise((r) => setTimeout(r, 2)); // the publisher's pace, not a synchronisation
      }
    })();

    await waitFor(() => got.length >= 120, { what: '120 messages before the kill' });
    killedAt = got.length;
    await srv.kill('SIGKILL');
    srv = await startTether({ data: tmp.dir, port, args: serverArgs });

    await publishing;
    const cursors = await Promise.all(acks);
    await waitFor(() => got.length >= N, { timeout: 60_000, what: `all ${N} messages (have ${got.length})` });
    // Anything extra would show up now: give in-flight deliveries a moment by a round trip.
    await publisher.publish(channel, { n: 'end' });
    await waitFor(() => got.at(-1) === 'end', { what: 'the end marker' });
    got.pop();

    assert.deepEqual(got, Array.from({ length: N }, (_, i) => i), 'exactly once, in order');
    assert.equal(new Set(cursors.map((c) => c.cursor)).size, N, 'one cursor per publish');
    assert.ok(killedAt > 0 && killedAt < N, `killed mid-stream (at ${killedAt})`);
    assert.ok(states.some((s) => s.startsWith('connected->connecting')), `the consumer saw the outage: ${states.join(', ')}`);
    assert.equal(consumer.transport, mode);

    // The token travelled: as a WebSocket subprotocol (never in the URL), Authorization on fetch.
    if (mode === 'websocket') {
      const upgrades = proxy.seen.filter((r) => r.upgrade);
      assert.ok(upgrades.some((r) => r.headers['sec-websocket-protocol'] === 'tether, tether.token.tok-consumer' && r.url.includes('session=consumer-websocket')), 'token as a subprotocol, session key on the WebSocket URL');
      assert.ok(upgrades.every((r) => !r.url.includes('token')), 'no token in a WebSocket URL: ' + upgrades.map((r) => r.url).join(' '));
    } else {
      assert.ok(proxy.seen.some((r) => r.headers.authorization === 'Bearer tok-consumer' && r.url.includes(channel)), 'Bearer token on reads');
      assert.ok(proxy.seen.some((r) => r.method === 'POST' && r.headers.authorization === 'Bearer tok-publisher'), 'Bearer token on publishes');
      assert.ok(proxy.seen.some((r) => r.upgrade), 'WebSocket was tried first');
    }
  });
}
