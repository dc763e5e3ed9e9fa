// A job worker in Node: runs `resize` jobs; a cancel fires the handler's signal.
//   node --experimental-websocket examples/node-worker.mjs
import { Worker } from '@tether-run/client/worker';

const worker = new Worker({ url: process.env.TETHER_URL ?? 'http://127.0.0.1:8080', concurrency: 4 });
worker.handle('resize', async (payload, { signal, progress }) => {
  for (let step = 1; step <= 10; step++) {
    signal.throwIfAborted(); // cancelled: stop here; the process lives on
    await new Promise((r) => setTimeout(r, 100));
    await progress({ step });
  }
  return { resized: payload.src };
});
worker.on('state', (s) => console.log('worker', s.state, s.reason));
worker.start();
process.once('SIGTERM', () => worker.stop().then(() => process.exit(0)));
process.once('SIGINT', () => worker.stop().then(() => process.exit(0)));
