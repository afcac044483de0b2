// bench/vs-etcd-etcd.ts — the etcd side of `pnpm bench:vs-etcd`: installing
// Debian's etcd-server, a 3-member etcd on loopback, and a small gRPC client.
//
// The client is @grpc/grpc-js with hand-written protobuf encoding of the four
// messages used (PutRequest, RangeRequest, TxnRequest, StatusRequest) and no
// .proto loading: etcd serves native gRPC, so etcd's server CPU per op is its
// own. etcd 3.4's JSON gateway would be cheaper to write, but it runs inside
// etcd and forwards each request to etcd's gRPC server over a second loopback
// gRPC call, which would bill a translation hop to etcd's server CPU and
// latency. The client's CPU is measured (bench process CPU per op) and
// reported beside Flotilla's client's.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { freePort, waitFor } from './vs-etcd-run';

const ETCD = '/usr/bin/etcd';

/**
 * ensureEtcd returns etcd's path, installing Debian's etcd-server when apt is
 * usable, or a reason to skip. `apt-get update` runs once, before the install.
 */
export function ensureEtcd(log: (s: string) => void): { path: string } | { skip: string } {
  if (existsSync(ETCD)) return { path: ETCD };
  if (spawnSync('sh', ['-c', 'command -v apt-get']).status !== 0) return { skip: 'etcd is not installed and apt-get is not available' };
  if (process.getuid?.() !== 0) return { skip: 'etcd is not installed and installing it with apt-get needs root' };
  log('installing etcd-server with apt-get (apt-get update, then apt-get install -y etcd-server)');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const update = spawnSync('apt-get', ['update'], { env, encoding: 'utf8', timeout: 300_000 });
  if (update.status !== 0) return { skip: `apt-get update failed: ${(update.stderr ?? '').trim().split('\n').pop()}` };
  const install = spawnSync('apt-get', ['install', '-y', 'etcd-server'], { env, encoding: 'utf8', timeout: 600_000 });
  if (install.status !== 0 || !existsSync(ETCD)) return { skip: `apt-get install -y etcd-server failed: ${(install.stderr ?? '').trim().split('\n').pop()}` };
  return { path: ETCD };
}

// ------------------------------------------------------------- protobuf

function varint(n: number | bigint): number[] {
  let v = BigInt(n);
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

/** field encodes one length-delimited protobuf field. */
function field(no: number, bytes: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from([...varint((no << 3) | 2), ...varint(bytes.length)]), bytes]);
}

function putRequest(key: Uint8Array, value: Uint8Array): Buffer {
  return Buffer.concat([field(1, key), field(2, value)]);
}

/** rangeRequest of one key; serializable stays false (the default): a linearizable read. */
function rangeRequest(key: Uint8Array): Buffer {
  return field(1, key);
}

/** txnRequest with no compares and one RequestOp{request_put} per pair in success. */
function txnPuts(pairs: readonly [Uint8Array, Uint8Array][]): Buffer {
  return Buffer.concat(pairs.map(([k, v]) => field(2, field(2, putRequest(k, v)))));
}

/** readFields walks one protobuf message: varints as bigint, length-delimited fields as Buffers. */
function readFields(buf: Buffer): Map<number, (bigint | Buffer)[]> {
  const out = new Map<number, (bigint | Buffer)[]>();
  let i = 0;
  const readVarint = (): bigint => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[i++]!;
      v |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return v;
      shift += 7n;
    }
  };
  while (i < buf.length) {
    const tag = Number(readVarint());
    const no = tag >> 3;
    const wire = tag & 7;
    let val: bigint | Buffer;
    if (wire === 0) val = readVarint();
    else if (wire === 2) {
      const len = Number(readVarint());
      val = buf.subarray(i, i + len);
      i += len;
    } else if (wire === 1) {
      val = buf.readBigUInt64LE(i);
      i += 8;
    } else if (wire === 5) {
      val = BigInt(buf.readUInt32LE(i));
      i += 4;
    } else throw new Error(`protobuf wire type ${wire} not handled`);
    const list = out.get(no) ?? [];
    list.push(val);
    out.set(no, list);
  }
  return out;
}

// --------------------------------------------------------------- client

const identity = (b: Buffer): Buffer => b;

/** EtcdClient spreads calls over `channels` HTTP/2 connections to one member (the leader). */
export class EtcdClient {
  private readonly clients: grpc.Client[];
  private next = 0;

  constructor(address: string, channels = 4) {
    this.clients = Array.from({ length: channels }, () => new grpc.Client(address, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
    }));
  }

  private call(method: string, req: Buffer): Promise<Buffer> {
    const c = this.clients[this.next++ % this.clients.length]!;
    return new Promise((resolve, reject) => {
      c.makeUnaryRequest(method, identity, identity, req, (err, res) => (err ? reject(err) : resolve(res!)));
    });
  }

  async put(key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.call('/etcdserverpb.KV/Put', putRequest(key, value));
  }

  /** get is a linearizable Range of one key; it returns the value's length (-1 when the key is absent). */
  async get(key: Uint8Array): Promise<number> {
    const res = readFields(await this.call('/etcdserverpb.KV/Range', rangeRequest(key)));
    const kv = res.get(2)?.[0];
    if (kv === undefined) return -1;
    const value = readFields(kv as Buffer).get(5)?.[0];
    return value === undefined ? 0 : (value as Buffer).length;
  }

  /** batchPut writes all pairs in one Txn (etcd's --max-txn-ops is 128 by default). */
  async batchPut(pairs: readonly [Uint8Array, Uint8Array][]): Promise<void> {
    const res = readFields(await this.call('/etcdserverpb.KV/Txn', txnPuts(pairs)));
    if (res.get(2)?.[0] !== 1n) throw new Error('etcd txn did not take its success branch');
  }

  /** status returns this member's id and the leader's id as it knows them (Maintenance/Status). */
  async status(): Promise<{ member: bigint; leader: bigint }> {
    const res = readFields(await this.call('/etcdserverpb.Maintenance/Status', Buffer.alloc(0)));
    const header = readFields((res.get(1)?.[0] as Buffer | undefined) ?? Buffer.alloc(0));
    return { member: (header.get(2)?.[0] as bigint | undefined) ?? 0n, leader: (res.get(4)?.[0] as bigint | undefined) ?? 0n };
  }

  close(): void {
    for (const c of this.clients) c.close();
  }
}

// -------------------------------------------------------------- cluster

/** EtcdCluster is three etcd members on loopback, each with its own data dir and log file. */
export class EtcdCluster {
  private constructor(
    readonly procs: ChildProcess[],
    readonly clientAddresses: string[],
    readonly leaderAddress: string,
  ) {}

  get pids(): number[] {
    return this.procs.map((p) => p.pid ?? 0);
  }

  static async start(etcd: string, dir: string): Promise<EtcdCluster> {
    const names = ['m1', 'm2', 'm3'];
    const clientPorts = await Promise.all(names.map(() => freePort()));
    const peerPorts = await Promise.all(names.map(() => freePort()));
    const initial = names.map((n, i) => `${n}=http://127.0.0.1:${peerPorts[i]}`).join(',');
    const procs = names.map((n, i) => {
      const data = join(dir, n);
      mkdirSync(data, { recursive: true });
      const out = openSync(join(dir, `${n}.log`), 'a');
      return spawn(etcd, [
        '--name', n, '--data-dir', data,
        '--listen-client-urls', `http://127.0.0.1:${clientPorts[i]}`, '--advertise-client-urls', `http://127.0.0.1:${clientPorts[i]}`,
        '--listen-peer-urls', `http://127.0.0.1:${peerPorts[i]}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peerPorts[i]}`,
        '--initial-cluster', initial, '--initial-cluster-state', 'new', '--initial-cluster-token', 'bench-vs-etcd',
        '--logger', 'zap', '--log-level', 'warn',
      ], { stdio: ['ignore', out, out] });
    });
    const addresses = clientPorts.map((p) => `127.0.0.1:${p}`);
    const clients = addresses.map((a) => new EtcdClient(a, 1));
    try {
      let leader = '';
      await waitFor(60_000, 'an etcd leader', async () => {
        for (const p of procs) if (p.exitCode !== null) throw new Error(`etcd exited with code ${p.exitCode} (see ${dir}/*.log)`);
        for (let i = 0; i < clients.length; i++) {
          const s = await clients[i]!.status().catch(() => undefined);
          if (s !== undefined && s.leader !== 0n && s.leader === s.member) leader = addresses[i]!;
        }
        return leader !== '';
      });
      return new EtcdCluster(procs, addresses, leader);
    } catch (err) {
      for (const p of procs) p.kill('SIGKILL');
      throw err;
    } finally {
      for (const c of clients) c.close();
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.procs.map((p) => new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      const t = setTimeout(() => p.kill('SIGKILL'), 10_000);
      p.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      p.kill('SIGTERM');
    })));
  }
}
