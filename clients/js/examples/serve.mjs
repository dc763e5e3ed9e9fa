// Serves the browser quick start (examples/index.html and dist/) and forwards
// /v1/* and /healthz, WebSocket upgrades included, to tether: the page and
// the API share one origin, as they would behind any reverse proxy (tether
// has no CORS yet). Zero dependencies.
//   node examples/serve.mjs            # page on http://127.0.0.1:3000, tether at 127.0.0.1:8080
// PORT and TETHER_URL override those; PORT=0 picks a free port.
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { dirname, extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tether = new URL(process.env.TETHER_URL ?? 'http://127.0.0.1:8080');
const types = { '.js': 'text/javascript', '.html': 'text/html' };

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path.startsWith('/v1/') || path === '/healthz') {
    const up = http.request({ host: tether.hostname, port: tether.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      res.flushHeaders();
      r.pipe(res);
    });
    up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end('tether is not reachable')));
    res.on('close', () => up.destroy());
    req.pipe(up);
    return;
  }
  const file = path === '/' ? join(root, 'examples/index.html') : join(root, normalize(path));
  if (!file.startsWith(join(root, 'dist')) && file !== join(root, 'examples/index.html')) return res.writeHead(404).end();
  if (!existsSync(file)) return res.writeHead(404).end('not found (run npm run build)');
  res.writeHead(200, { 'Content-Type': types[extname(file)] ?? 'application/octet-stream' }).end(readFileSync(file));
});
server.on('upgrade', (req, sock, head) => {
  const up = net.connect(Number(tether.port), tether.hostname, () => {
    let h = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) h += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    up.write(h + '\r\n');
    up.write(head);
    sock.pipe(up).pipe(sock);
  });
  up.on('error', () => sock.destroy());
  sock.on('error', () => up.destroy());
});
server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  console.log(`quick start on http://127.0.0.1:${server.address().port} (tether at ${tether.origin})`);
});
