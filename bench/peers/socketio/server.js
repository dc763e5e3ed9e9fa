// socket.io peer of tether's load harness (tether bench).
//
// HOST and PORT say where to listen (127.0.0.1 by default). A client joins
// the room named by its handshake query `channel`. Plain HTTP beside it:
//   POST /pub/<channel>  emits the body (a string) as event "m" to the room,
//                        answers 201 once handed to the sockets (nothing is
//                        stored: socket.io keeps no history)
//   GET  /stats          {"clients": N, "rss": bytes}
// Every disconnect is written to stdout as one JSON line with its reason
// and the client's address, so the harness can time departures.
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.PORT || 0);

const srv = http.createServer((req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/pub/')) {
    const room = decodeURIComponent(req.url.slice(5));
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      io.to(room).emit('m', Buffer.concat(chunks).toString());
      res.writeHead(201, { 'Content-Type': 'application/json' });
      res.end('{"ok":true}');
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ clients: io.engine.clientsCount, rss: process.memoryUsage().rss }));
    return;
  }
  res.writeHead(404);
  res.end();
});
srv.keepAliveTimeout = 120000;
srv.maxRequestsPerSocket = 0;

const io = new Server(srv, { serveClient: false, transports: ['websocket'] });

io.on('connection', (socket) => {
  const room = socket.handshake.query.channel;
  if (room) socket.join(String(room));
  const s = socket.request.socket;
  const remote = `${s.remoteAddress}:${s.remotePort}`;
  socket.on('disconnect', (reason) => {
    process.stdout.write(JSON.stringify({ event: 'disconnect', reason, remote }) + '\n');
  });
});

srv.listen(port, host, () => {
  process.stdout.write(JSON.stringify({ event: 'listening', port: srv.address().port }) + '\n');
});
process.on('SIGTERM', () => process.exit(0));
