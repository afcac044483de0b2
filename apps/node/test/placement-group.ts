import { join } from 'node:path';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { PlacementClient } from '@flotilla/placement/client';
import { compareKeys } from '@flotilla/proto';
import { runCli, startCli, waitFor, type CliChild } from './helpers';
import { httpJson } from './processes';

// placement-group.ts: a replicated placement of real `flotilla placement`
// processes for the failover, partition and membership tests, and the
// checkers they share (IDs never given twice, a whole routing table, TSO
// linearizability), plus a TCP proxy on 127.0.0.1 that cuts links.

/** freePort asks the kernel for a free loopback port (closed again before it is used). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export interface Member {
  name: string;
  /** address: where the member really listens (clients in the tests dial it directly). */
  address: string;
  child: CliChild;
}

/** startMember runs `flotilla placement --name NAME` on dir/NAME with these extra flags (--initial-cluster or --join ...). */
export function startMember(dir: string, name: string, address: string, flags: string[], children: CliChild[]): Member {
  const child = startCli(['placement', '--name', name, '--data-dir', join(dir, name), '--listen', address, '--log-level', 'warn', ...flags]);
  children.push(child);
  return { name, address, child };
}

/** role is what a member's /health says it is ('' when it does not answer). */
export async function role(m: Member): Promise<string> {
  return (await httpJson<{ role: string }>(`http://${m.address}/health`).catch(() => ({ role: '' }))).role;
}

/** findLeader waits (bounded) until exactly one of members says it leads, and returns it. */
export async function findLeader(members: Member[], timeoutMs = 15_000): Promise<Member> {
  return waitFor('one placement leader', async () => {
    const roles = await Promise.all(members.map(role));
    const leaders = members.filter((_, i) => roles[i] === 'leader');
    return leaders.length === 1 ? leaders[0] : undefined;
  }, timeoutMs, 100);
}

export interface MemberRow {
  name: string;
  id: number;
  address: string;
  role: string;
}

/** cliMembers runs `flotilla placement members --json` against these addresses. */
export async function cliMembers(placement: string): Promise<{ members: MemberRow[]; leaderId: number }> {
  const r = await runCli(['placement', 'members', '--json', '--placement', placement], { timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`placement members exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as { members: MemberRow[]; leaderId: number };
}

/** IdLedger: what each ID ever seen was given to; an ID given to two things is a violation. */
export class IdLedger {
  readonly owner = new Map<number, string>();
  readonly violations: string[] = [];
  record(id: number, what: string): void {
    const prev = this.owner.get(id);
    if (prev === undefined) this.owner.set(id, what);
    else if (prev !== what) this.violations.push(`id ${id} is ${prev} and ${what}`);
  }
}

/** routingGaps names what is wrong with a routing table (sorted, contiguous from "" to "", every Region led), or '' when it is whole. */
export async function routingGaps(pc: PlacementClient): Promise<string> {
  const rs = await pc.scanRegions(new Uint8Array(), new Uint8Array(), 10_000);
  if (rs.length === 0) return 'no regions';
  if (rs[0]!.region.startKey.length !== 0) return 'does not start at ""';
  if (rs[rs.length - 1]!.region.endKey.length !== 0) return 'does not end at ""';
  for (let i = 1; i < rs.length; i++) if (compareKeys(rs[i - 1]!.region.endKey, rs[i]!.region.startKey) !== 0) return `gap or overlap before region ${rs[i]!.region.id}`;
  const leaderless = rs.find((r) => r.leader === undefined);
  return leaderless ? `region ${leaderless.region.id} has no leader` : '';
}

/**
 * TsoHistory checks TSO linearizability across every client it records:
 * a timestamp must be greater than every timestamp returned before its
 * request was sent (monotonic clock of this one test process).
 */
export class TsoHistory {
  private readonly done: { sentAt: number; doneAt: number; ts: bigint; who: string }[] = [];
  async take(who: string, pc: PlacementClient): Promise<bigint> {
    const sentAt = performance.now();
    const ts = await pc.timestamp();
    this.done.push({ sentAt, doneAt: performance.now(), ts, who });
    return ts;
  }
  get size(): number {
    return this.done.length;
  }
  countBy(who: string): number {
    return this.done.filter((d) => d.who === who).length;
  }
  /** violations lists every timestamp not above one returned before its request went out. */
  violations(): string[] {
    const out: string[] = [];
    const byDone = [...this.done].sort((a, b) => a.doneAt - b.doneAt);
    for (const d of this.done) {
      let max: { ts: bigint; who: string } | undefined;
      for (const e of byDone) {
        if (e.doneAt >= d.sentAt) break;
        if (!max || e.ts > max.ts) max = e;
      }
      if (max && d.ts <= max.ts) out.push(`${d.who} got ${d.ts}, not above ${max.ts} that ${max.who} got before the request was sent`);
    }
    return out;
  }
}

/**
 * TcpProxy forwards 127.0.0.1:port to a target; cut() drops every
 * connection through it and refuses new ones until heal(): a network cut
 * that both ends see as broken or refused connections.
 */
export class TcpProxy {
  private readonly sockets = new Set<Socket>();
  private cutOff = false;
  private constructor(private readonly server: Server, readonly address: string) {}

  static async start(target: string, port = 0): Promise<TcpProxy> {
    const [host, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
    let proxy: TcpProxy | undefined;
    const server = createServer((inbound) => {
      if (!proxy || proxy.cutOff) return void inbound.destroy();
      const outbound = connect(targetPort, host);
      for (const s of [inbound, outbound]) {
        proxy.sockets.add(s);
        s.on('close', () => proxy!.sockets.delete(s));
        s.on('error', () => undefined);
      }
      inbound.pipe(outbound);
      outbound.pipe(inbound);
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    proxy = new TcpProxy(server, `127.0.0.1:${(server.address() as AddressInfo).port}`);
    return proxy;
  }

  cut(): void {
    this.cutOff = true;
    for (const s of this.sockets) s.destroy();
  }

  heal(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Phases times the steps of a long test, for its one summary line on stderr (where the minute went on a loaded machine). */
export class Phases {
  private last = performance.now();
  private readonly parts: string[] = [];
  mark(name: string): void {
    const now = performance.now();
    this.parts.push(`${name} ${((now - this.last) / 1000).toFixed(1)}s`);
    if (process.env['FLOTILLA_TEST_PHASES'] === '1') process.stderr.write(`phase: ${this.parts[this.parts.length - 1]}\n`);
    this.last = now;
  }
  toString(): string {
    return this.parts.join(', ');
  }
}
