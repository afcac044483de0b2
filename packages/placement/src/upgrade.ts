import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';

/**
 * routeUpgrades hands each WebSocket upgrade on server to the
 * WebSocketServer of its path (each created with noServer). An unknown
 * path gets 404 and a request failing `allowed` (the API token) 401, both
 * before any frame is read. One port then serves several WebSocket APIs:
 * placement's client API on /ws and its members' raft traffic on /raft.
 */
export function routeUpgrades(server: Server, routes: Record<string, WebSocketServer>, allowed: (req: IncomingMessage, path: string) => boolean): void {
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = new URL(req.url ?? '/', 'http://placement').pathname;
    const wss = Object.prototype.hasOwnProperty.call(routes, path) ? routes[path] : undefined;
    if (wss === undefined) return refuse(socket, 404, 'Not Found');
    if (!allowed(req, path)) return refuse(socket, 401, 'Unauthorized', 'WWW-Authenticate: Bearer\r\n');
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
}

function refuse(socket: Duplex, status: number, text: string, extra = ''): void {
  socket.on('error', () => {});
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\n${extra}Content-Length: 0\r\n\r\n`);
}
