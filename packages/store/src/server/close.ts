import type { WebSocket } from 'ws';

/** CLOSE_GRACE_MS bounds how long close() waits for a client to answer its close frame. */
const CLOSE_GRACE_MS = 1000;

/** closeGracefully sends a close frame and waits up to CLOSE_GRACE_MS for the answer, then terminates (the client and watch servers). */
export function closeGracefully(c: WebSocket): Promise<void> {
  return new Promise((resolve) => {
    if (c.readyState === c.CLOSED) return resolve();
    const timer = setTimeout(() => {
      c.terminate();
      resolve();
    }, CLOSE_GRACE_MS);
    c.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    c.close(1001, 'store stopping');
  });
}
