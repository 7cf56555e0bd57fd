'use strict';
// Peer for Board's benchmark: Node socket.io 4.x, same behaviour as bench/board_app.py.
//
//     node bench/peers/node_sio.js PORT
//
// `bcast` (data) -> emit `bcast` (data) to everyone; `echo` (data) with an ack -> ack (data).
// Binds 127.0.0.1, ping interval 25 s, prints "listening on PORT" once it accepts connections.
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node node_sio.js PORT');
  process.exit(2);
}
const server = http.createServer();
const io = new Server(server, {
  pingInterval: 25000,
  pingTimeout: 20000,
  maxHttpBufferSize: 1e6,
  serveClient: false,
  transports: ['polling', 'websocket'],
});
io.on('connection', (socket) => {
  socket.on('bcast', (data) => io.emit('bcast', data));
  socket.on('echo', (data, ack) => {
    if (typeof ack === 'function') ack(data);
  });
});
server.listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
