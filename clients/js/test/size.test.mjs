// The SDK's main entry, minified and gzipped, stays under socket.io-client's
// browser bundle (scripts/size.mjs measures both the same way).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { measure } from '../scripts/size.mjs';

test('bundle: minified + gzipped, smaller than socket.io-client', async (t) => {
  const m = await measure();
  const ours = m['@tether-run/client'];
  const [sioName, sio] = Object.entries(m).find(([k]) => k.startsWith('socket.io-client'));
  t.diagnostic(`@tether-run/client ${ours.min} B min, ${ours.gzip} B gzip; worker ${m['@tether-run/client/worker'].gzip} B gzip; ${sioName} ${sio.min} B min, ${sio.gzip} B gzip`);
  assert.ok(ours.gzip < sio.gzip, `${ours.gzip} >= ${sio.gzip}`);
});
