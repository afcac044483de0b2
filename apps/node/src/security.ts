import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import { z } from 'zod';
import { UsageError, boolFlag, pathFlag, type FlagSpec } from './args';
import { MIN_SECRET_CHARS } from './cluster-secret';

// security.ts: the CLI side of docs/security.md. Servers (placement, store,
// up) take an API token and a certificate; ctl commands take the token and
// the CA to trust. The token is read from --token or FLOTILLA_TOKEN and is
// never logged or written to cluster.json.

const tokenFlag: FlagSpec = {
  name: 'token',
  type: 'string',
  placeholder: 'TOKEN',
  description: 'API token: servers require it (Authorization: Bearer) on every connection and HTTP route but /health; clients send it. Prefer FLOTILLA_TOKEN over the flag (argv is visible in ps)',
  schema: z.string({ message: 'expected text' }).min(8, { message: 'expected at least 8 characters' }),
};
const caFlag: FlagSpec = { name: 'tls-ca', type: 'string', placeholder: 'FILE', description: 'PEM CA certificate to trust when dialing placement and stores over TLS (default: the system roots)', schema: pathFlag() };

/** serverSecurityFlags: what `placement`, `store` and `up` accept. */
export const serverSecurityFlags: FlagSpec[] = [
  tokenFlag,
  { name: 'tls-cert', type: 'string', placeholder: 'FILE', description: 'PEM certificate to serve https/wss with (needs --tls-key)', schema: pathFlag() },
  { name: 'tls-key', type: 'string', placeholder: 'FILE', description: 'PEM private key of --tls-cert', schema: pathFlag() },
  caFlag,
];

/**
 * storeSecurityFlags: what `store` and `up` add for the raft port: the
 * cluster secret (whose default differs: the development secret for a
 * lone store, a generated one for `up`) and mutual TLS.
 */
export function storeSecurityFlags(secretDefault: string): FlagSpec[] {
  return [
    {
      name: 'cluster-secret',
      type: 'string',
      placeholder: 'SECRET',
      description: `shared secret authenticating store-to-store (raft) connections; the same on every store, at least ${MIN_SECRET_CHARS} characters (e.g. openssl rand -hex 32). Prefer FLOTILLA_CLUSTER_SECRET over the flag (argv is visible in ps). Default: ${secretDefault}`,
      schema: z.string({ message: 'expected text' }).min(MIN_SECRET_CHARS, { message: `expected at least ${MIN_SECRET_CHARS} characters (e.g. openssl rand -hex 32)` }),
    },
    {
      name: 'tls-client-auth',
      type: 'boolean',
      description: 'mutual TLS on the raft port: refuse, in the TLS handshake, any store that does not present a certificate signed by --tls-ca (needs --tls-cert, --tls-key and --tls-ca)',
      schema: boolFlag(),
    },
  ];
}

export interface StoreSecurity {
  clusterSecret?: string;
  tlsClientAuth: boolean;
}

/** storeSecurity reads the storeSecurityFlags; --tls-client-auth needs the CA that signs every store's certificate. */
export function storeSecurity(values: Record<string, unknown>, sec: ServerSecurity): StoreSecurity {
  const tlsClientAuth = values['tlsClientAuth'] === true;
  if (tlsClientAuth && !sec.tls?.caPath) throw new UsageError("--tls-client-auth: needs --tls-cert, --tls-key and --tls-ca (the CA that signs every store's certificate)");
  const clusterSecret = values['clusterSecret'] as string | undefined;
  return { ...(clusterSecret ? { clusterSecret } : {}), tlsClientAuth };
}

/** clientSecurityFlags: what ctl commands accept. */
export const clientSecurityFlags: FlagSpec[] = [
  tokenFlag,
  caFlag,
  { name: 'tls', type: 'boolean', description: 'dial placement and stores with TLS (implied by --tls-ca)', schema: boolFlag() },
];

export interface ServerSecurity {
  token?: string;
  tls?: { certPath: string; keyPath: string; caPath?: string };
}

/** serverSecurity reads the validated server flags; --tls-cert and --tls-key go together and must be readable. */
export function serverSecurity(values: Record<string, unknown>): ServerSecurity {
  const token = values['token'] as string | undefined;
  const cert = values['tlsCert'] as string | undefined;
  const key = values['tlsKey'] as string | undefined;
  const ca = values['tlsCa'] as string | undefined;
  if ((cert === undefined) !== (key === undefined)) throw new UsageError(`--tls-cert and --tls-key go together (got only ${cert ? '--tls-cert' : '--tls-key'})`);
  if (ca !== undefined && cert === undefined) throw new UsageError('--tls-ca: needs --tls-cert and --tls-key (a server without a certificate does not use TLS)');
  const out: ServerSecurity = {};
  if (token) out.token = token;
  if (cert && key) {
    for (const [flag, p] of [['--tls-cert', cert], ['--tls-key', key], ...(ca ? [['--tls-ca', ca]] : [])] as const) readable(flag, p);
    out.tls = { certPath: resolve(cert), keyPath: resolve(key), ...(ca ? { caPath: resolve(ca) } : {}) };
  }
  return out;
}

export interface ClientSecurity {
  token?: string;
  tls?: { caPath?: string };
}

/** clientSecurity reads the ctl flags: the token to send, and whether (and what) to trust over TLS. */
export function clientSecurity(values: Record<string, unknown>, fallback?: { tlsCaPath?: string; tls?: boolean }): ClientSecurity {
  const token = values['token'] as string | undefined;
  const ca = (values['tlsCa'] as string | undefined) ?? fallback?.tlsCaPath;
  const tls = values['tls'] === true || ca !== undefined || fallback?.tls === true;
  if (ca !== undefined) readable('--tls-ca', ca);
  const out: ClientSecurity = {};
  if (token) out.token = token;
  if (tls) out.tls = ca ? { caPath: resolve(ca) } : {};
  return out;
}

function readable(flag: string, path: string): void {
  try {
    readFileSync(path);
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * httpGet fetches a URL on placement or a store with the token header and,
 * for https, the configured CA (fetch cannot take a CA, so this uses the
 * http modules). Resolves with the status and body; rejects on network errors.
 */
export function httpGet(url: string, sec: ClientSecurity, timeoutMs: number): Promise<{ status: number; body: string }> {
  return httpRequest('GET', url, sec, timeoutMs);
}

/** httpRequest is httpGet for any method; a json body is sent as application/json (placement's admin routes). */
export function httpRequest(method: string, url: string, sec: ClientSecurity, timeoutMs: number, json?: unknown): Promise<{ status: number; body: string }> {
  const mod = url.startsWith('https:') ? https : http;
  const ca = sec.tls?.caPath ? readFileSync(sec.tls.caPath) : undefined;
  const body = json === undefined ? undefined : JSON.stringify(json);
  const headers: Record<string, string> = { ...(sec.token ? { authorization: `Bearer ${sec.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) };
  return new Promise((resolveGet, reject) => {
    const req = mod.request(url, { method, headers, timeout: timeoutMs, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** httpScheme: https when the servers use TLS. */
export const httpScheme = (sec: { tls?: unknown }): 'http' | 'https' => (sec.tls ? 'https' : 'http');
