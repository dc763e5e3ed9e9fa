// Events that arrive before their handler: held, replayed in order when a
// handler registers; what overflows (count or bytes) or expires is reported
// through `dropped` with counts and cursors, never dropped silently.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Client } from '../dist/index.js';
import { startTether, tempDir, waitFor } from './helpers.mjs';

let srv, tmp;
const clients = [];
before(async () => {
  tmp = tempDir();
  srv = await startTether({ data: tmp.dir });
});
after(async () => {
  for (const c of clients) c.close();
  await srv?.kill('SIGKILL');
  tmp?.cleanup();
});

function client(opts = {}) {
  const c = new Client({ url: srv.url, ...opts });
  clients.push(c);
  return c;
}

async function publishAll(channel, values) {
  const p = client();
  const acks = [];
  for (const v of values) acks.push(await p.publish(channel, v));
  p.close();
  return acks.map((a) => a.cursor);
}

test('a message sent before its handler exists is delivered when the handler registers', async () => {
  const c = client();
  const sub = c.subscribe('early', { after: '0' });
  await sub.ready();
  await publishAll('early', [{ n: 0 }, { n: 1 }, { n: 2 }]);
  await waitFor(() => sub.held === 3, { what: '3 held messages' });
  assert.equal(sub.cursor, '0', 'nothing handled yet');

  const got = [];
  sub.on('message', (m) => got.push(m.data.n));
  await waitFor(() => got.length === 3, { what: 'replay' });
  assert.deepEqual(got, [0, 1, 2]);
  assert.equal(sub.held, 0);

  await publishAll('early', [{ n: 3 }]);
  await waitFor(() => got.length === 4, { what: 'a live message after the replay' });
  assert.deepEqual(got, [0, 1, 2, 3]);
  assert.equal(sub.cursor, (await fetch(`${srv.url}/v1/channels/early/messages?after=0`).then((r) => r.json())).next);
});

test('overflow by count is reported with counts and cursors; what was held replays in order', async () => {
  const c = client({ pending: { maxCount: 5 } });
  const dropped = [];
  c.on('dropped', (r) => dropped.push(r));
  const sub = c.subscribe('overflow', { after: '0' });
  await sub.ready();
  const cursors = await publishAll('overflow', [0, 1, 2, 3, 4, 5, 6, 7]);
  await waitFor(() => dropped.reduce((n, r) => n + r.count, 0) === 3, { what: 'an overflow report of 3' });
  assert.equal(dropped[0].reason, 'overflow');
  assert.equal(dropped[0].channel, 'overflow');
  assert.equal(dropped[0].firstCursor, cursors[5]);
  assert.equal(dropped.at(-1).lastCursor, cursors[7]);
  assert.equal(sub.held, 5);
  const got = [];
  sub.on('message', (m) => got.push(m.data));
  await waitFor(() => got.length === 5, { what: 'replay' });
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
});

test('overflow by bytes is reported', async () => {
  const c = client({ pending: { maxBytes: 250 } });
  const sub = c.subscribe('overflow-bytes', { after: '0' });
  await sub.ready();
  const reports = [];
  c.on('dropped', (r) => reports.push(r));
  // Each message's JSON is 102 bytes: two fit in 250.
  await publishAll('overflow-bytes', ['a'.repeat(100), 'b'.repeat(100), 'c'.repeat(100), 'd'.repeat(100)]);
  await waitFor(() => reports.reduce((n, r) => n + r.count, 0) === 2, { what: 'an overflow report of 2' });
  assert.ok(reports.every((r) => r.reason === 'overflow'));
  assert.equal(reports.reduce((n, r) => n + r.bytes, 0), 204);
  assert.equal(sub.held, 2);
  const got = [];
  sub.on('message', (m) => got.push(m.data[0]));
  await waitFor(() => got.length === 2, { what: 'replay' });
  assert.deepEqual(got, ['a', 'b']);
});

test('held events past their TTL are reported as expired, and the stream goes on', async () => {
  const c = client({ pending: { ttlMs: 300 } });
  const sub = c.subscribe('ttl', { after: '0' });
  await sub.ready();
  const reports = [];
  c.on('dropped', (r) => reports.push(r));
  const cursors = await publishAll('ttl', ['x', 'y', 'z']);
  // Each expires on its own deadline: the reports may come one per tick.
  await waitFor(() => reports.reduce((n, r) => n + r.count, 0) === 3, { what: '3 expired' });
  assert.ok(reports.every((r) => r.reason === 'expired' && r.channel === 'ttl'));
  assert.equal(reports[0].firstCursor, cursors[0]);
  assert.equal(reports.at(-1).lastCursor, cursors[2]);
  assert.equal(sub.held, 0);
  const got = [];
  sub.on('message', (m) => got.push(m.data));
  await publishAll('ttl', ['live']);
  await waitFor(() => got.length === 1, { what: 'the live message' });
  assert.deepEqual(got, ['live']);
});
