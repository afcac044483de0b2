import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { WsTransport, type TlsOptions } from '../src/ws-transport';
import { raftMsg, waitFor } from './helpers';

// A self-signed certificate for 127.0.0.1 (see fixtures/README.md).
const certPath = fileURLToPath(new URL('./fixtures/test-cert.pem', import.meta.url));
const keyPath = fileURLToPath(new URL('./fixtures/test-key.pem', import.meta.url));
// A cluster CA, a store certificate it signed, and a stranger's self-signed one (fixtures/README.md).
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

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

  it('with requireClientCert, admits stores whose certificate the cluster CA signed and refuses others in the TLS handshake', async () => {
    const book = new Map<number, string>();
    const member = { certPath: fixture('store-cert.pem'), keyPath: fixture('store-key.pem'), caPath: fixture('ca-cert.pem') };
    const mk = (id: number, tls: TlsOptions) => new WsTransport({ storeId: id, clusterId: 'c', secret: 's3cret', resolveAddress: async (x) => book.get(x), tls });
    const a = mk(11, { ...member, requireClientCert: true });
    const b = mk(12, { ...member, requireClientCert: true });
    // The stranger knows the secret and trusts the CA, but its certificate is self-signed.
    const stranger = mk(13, { certPath: fixture('intruder-cert.pem'), keyPath: fixture('intruder-key.pem'), caPath: fixture('ca-cert.pem') });
    for (const t of [a, b, stranger]) {
      await t.start();
      book.set(t.storeId, t.address);
      open.push(t);
    }
    let got = 0;
    b.onMessages((msgs) => (got += msgs.length));
    a.send(12, raftMsg(1, 1, 2, 1));
    a.flush();
    await waitFor(() => got === 1, 'message over mutual TLS');
    stranger.send(12, raftMsg(1, 3, 2, 1));
    stranger.flush();
    await waitFor(() => b.stats().handshakesRejected >= 1 && stranger.stats().dialFailures >= 1, 'the stranger refused in the TLS handshake');
    expect(got).toBe(1);
  });

  it('refuses requireClientCert without a CA to check certificates against', () => {
    expect(() => new WsTransport({ storeId: 1, clusterId: 'c', secret: 's', resolveAddress: async () => undefined, tls: { certPath, keyPath, requireClientCert: true } })).toThrow(/requireClientCert needs tls.caPath/);
  });
});
