import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WsTransport } from '../src/ws-transport';
import { raftMsg, waitFor } from './helpers';

// A self-signed certificate for 127.0.0.1 (see fixtures/README.md).
const certPath = fileURLToPath(new URL('./fixtures/test-cert.pem', import.meta.url));
const keyPath = fileURLToPath(new URL('./fixtures/test-key.pem', import.meta.url));

const open: WsTransport[] = [];
afterAll(async () => {
  await Promise.all(open.map((t) => t.close()));
});

describe('WsTransport over TLS', () => {
  it('exchanges messages over wss and refuses a plain-text peer', async () => {
    const book = new Map<number, string>();
    const tls = { certPath, keyPath, caPath: certPath };
    const mk = (id: number, withTls: boolean) =>
      new WsTransport({ storeId: id, clusterId: 'c', secret: 's3cret', resolveAddress: async (x) => book.get(x), ...(withTls ? { tls } : {}) });
    const a = mk(1, true);
    const b = mk(2, true);
    const plain = mk(3, false);
    for (const t of [a, b, plain]) {
      await t.start();
      book.set(t.storeId, t.address);
      open.push(t);
    }
    let got = 0;
    b.onMessages((msgs) => (got += msgs.length));
    a.send(2, raftMsg(1, 1, 2, 1));
    a.flush();
    await waitFor(() => got === 1, 'message over TLS');
    plain.send(2, raftMsg(1, 3, 2, 1));
    plain.flush();
    await waitFor(() => plain.stats().dialFailures === 1, 'plain dial to a TLS store fails');
    expect(got).toBe(1);
  });
});
