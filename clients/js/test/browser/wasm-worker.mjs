// A Web Worker that runs tether jobs on a WebAssembly module it loads once.
//
// The seed's problem: a long wasm computation must be cancellable without
// worker.terminate(), which would throw away the loaded data. The design
// here: the wasm export computes one slice of the work and returns; the
// handler calls it in a loop and yields to the event loop between slices
// (yieldToEventLoop, a MessageChannel round, no 4 ms clamp), so the
// `job.cancel` frame arriving on the WebSocket is read and fires the
// handler's AbortSignal, which the loop checks after every slice. The wasm
// instance and its memory stay as they are for the next job. The cost is one
// event-loop turn per slice (a slice here is ~1 ms of work).
import { Worker, yieldToEventLoop } from '/dist/worker.js';

function uleb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}
const section = (id, bytes) => [id, ...uleb(bytes.length), ...bytes];
// (func $sum (param $from i32) (param $to i32) (param $acc i32) (result i32)):
// for i in [from, to): acc = acc*31 + mem32[i & 16383]; return acc
const body = [
  0x00, // no locals
  0x02, 0x40, 0x03, 0x40, // block, loop
  0x20, 0x00, 0x20, 0x01, 0x4f, 0x0d, 0x01, // br_if 1 (from >= to)
  0x20, 0x02, 0x41, 0x1f, 0x6c, // acc * 31
  0x20, 0x00, 0x41, 0xff, 0xff, 0x00, 0x71, 0x41, 0x02, 0x74, 0x28, 0x02, 0x00, // mem32[(from & 16383) << 2]
  0x6a, 0x21, 0x02, // acc = sum
  0x20, 0x00, 0x41, 0x01, 0x6a, 0x21, 0x00, // from++
  0x0c, 0x00, 0x0b, 0x0b, // br 0, end loop, end block
  0x20, 0x02, 0x0b, // acc
];
const wasm = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  ...section(1, [0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x01, 0x7f]), // type (i32 i32 i32) -> i32
  ...section(3, [0x01, 0x00]), // one function
  ...section(5, [0x01, 0x00, 0x01]), // memory, 1 page
  ...section(7, [0x02, 0x03, 0x6d, 0x65, 0x6d, 0x02, 0x00, 0x03, 0x73, 0x75, 0x6d, 0x00, 0x00]), // export mem, sum
  ...section(10, [0x01, ...uleb(body.length), ...body]),
]);

const instanceId = Math.random().toString(36).slice(2);
let loads = 0;
const { instance } = await WebAssembly.instantiate(wasm);
loads++;
// The "loaded data": 16384 integers in the module's memory.
const data = new Int32Array(instance.exports.mem.buffer);
for (let k = 0; k < data.length; k++) data[k] = k * 7 + 3;

const w = new Worker({ url: self.location.origin, id: 'webworker-' + instanceId, heartbeatInterval: 500 });
w.handle('wasm-sum', async ({ steps, slice }, { signal, progress, job }) => {
  postMessage({ ev: 'started', job: job.id });
  signal.addEventListener('abort', () => postMessage({ ev: 'aborted', job: job.id, reason: signal.reason?.details?.reason }), { once: true });
  let acc = 0;
  let i = 0;
  let lastProgress = -Infinity;
  while (i < steps) {
    const end = Math.min(steps, i + slice);
    acc = instance.exports.sum(i, end, acc);
    i = end;
    if (i >= steps) break;
    if (performance.now() - lastProgress > 50) {
      lastProgress = performance.now();
      progress({ done: i }).catch(() => {});
    }
    await yieldToEventLoop();
    if (signal.aborted) {
      postMessage({ ev: 'stopped', job: job.id, done: i });
      throw signal.reason;
    }
  }
  return { acc, steps, loads, instanceId };
});
w.on('state', (s) => postMessage({ ev: 'state', state: s.state, reason: s.reason }));
w.start();
postMessage({ ev: 'loaded', instanceId });
