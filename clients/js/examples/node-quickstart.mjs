// Node quick start: subscribe, publish, get the message back, run a job.
// Run from clients/js after `npm ci && npm run build`, with tether on :8080
// and the example worker running (see README):
//   node --experimental-websocket examples/node-quickstart.mjs
import { Client } from '@tether-run/client';

const client = new Client({ url: process.env.TETHER_URL ?? 'http://127.0.0.1:8080' });
client.on('state', (s) => console.log(`state ${s.previous} -> ${s.state} (${s.reason}) over ${s.transport}`));

const news = client.subscribe('news'); // only what is published from now on
const received = new Promise((resolve) => news.on('message', (m) => resolve(m)));
await news.ready();

const { cursor } = await client.publish('news', { title: 'hello from node' });
console.log('published, durable at cursor', cursor);
const m = await received;
console.log('received', m.cursor, JSON.stringify(m.data));

// A job: the example worker's `sleep` handler. Aborting would cancel it on the server.
const result = await client.jobs.run('sleep', { ms: 200 }, {
  signal: AbortSignal.timeout(10_000),
  onProgress: (p) => console.log('progress', p),
});
console.log('job result', JSON.stringify(result));
client.close();
