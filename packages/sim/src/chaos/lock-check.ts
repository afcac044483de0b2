// lock-check.ts: the lock-safety checker of `pnpm chaos --workload lock`, a
// pure function over the contenders' records and the fenced register's
// history (the list of writes the register took, in commit order).
//
// The register is fenced: a write whose token is below the highest in the
// history is refused. So in a correct run its history is a sequence of
// holders' writes with tokens that never go down: no two holders' writes
// interleave out of token order, which is what split brain would leave
// behind if the resource trusted the lock alone. A client that skips the
// fence (the planted bug) and writes after a later holder shows as a token
// going down. Besides the order it checks that each write in the history
// was made by a real holder with its own token, that acknowledged writes are
// there once and refused ones are not, and that the lock handed out tokens
// in order (a contender that asked after another got the lock gets a higher
// token).

/** RegisterEntry is one write in the register's history: who wrote it with which token, and its per-writer sequence number. */
export interface RegisterEntry {
  token: bigint;
  who: number;
  seq: number;
}

/** LockGrant is one time a contender got the lock: its token, when it asked and when lock() resolved (run ms). */
export interface LockGrant {
  who: number;
  token: bigint;
  askedAtMs: number;
  heldAtMs: number;
  /** releasedAtMs: when it called release (or gave up); lostAtMs: when its lease was reported lost, if it was. */
  releasedAtMs?: number;
  lostAtMs?: number;
}

/** RegisterWrite is one write a contender tried: acknowledged ('ok'), refused by the fence, failed for sure, or undetermined. */
export interface RegisterWrite {
  who: number;
  token: bigint;
  seq: number;
  outcome: 'ok' | 'refused' | 'fail' | 'info';
}

/** LockCheck: problems is empty when the history is safe. */
export interface LockCheck {
  problems: string[];
  entries: number;
  holders: number;
  refused: number;
  /** overlaps: pairs of held intervals that overlapped in real time (expected only when a lease was lost meanwhile). */
  overlaps: number;
}

const MAX_PROBLEMS = 20;

/** parseRegister reads the register's value: entries "token:who:seq" separated by ';'. */
export function parseRegister(value: string | null): RegisterEntry[] {
  if (value === null || value === '') return [];
  return value.split(';').map((e) => {
    const [token, who, seq] = e.split(':');
    return { token: BigInt(token!), who: Number(who), seq: Number(seq) };
  });
}

/** formatEntry is one entry as the register stores it. */
export const formatEntry = (e: RegisterEntry): string => `${e.token}:${e.who}:${e.seq}`;

/** checkLock checks the register's history against what the contenders did (see the file comment). */
export function checkLock(history: readonly RegisterEntry[], grants: readonly LockGrant[], writes: readonly RegisterWrite[]): LockCheck {
  const problems: string[] = [];
  const problem = (p: string): void => {
    if (problems.length < MAX_PROBLEMS) problems.push(p);
  };
  const granted = new Map<bigint, LockGrant>();
  for (const g of grants) {
    const other = granted.get(g.token);
    if (other) problem(`token ${g.token} was handed out twice: to contender ${other.who} and to contender ${g.who}`);
    granted.set(g.token, g);
  }
  // No two holders interleave out of token order: along the history the token never goes down.
  let highest: RegisterEntry | undefined;
  const at = new Map<string, number>();
  history.forEach((e, i) => {
    if (highest && e.token < highest.token) {
      problem(`entry #${i}: contender ${e.who} wrote with token ${e.token} after contender ${highest.who} had written with the higher token ${highest.token}: two holders' writes interleave out of token order`);
    }
    if (!highest || e.token > highest.token) highest = e;
    const g = granted.get(e.token);
    if (!g) problem(`entry #${i}: token ${e.token} (contender ${e.who}) was never handed out by the lock`);
    else if (g.who !== e.who) problem(`entry #${i}: contender ${e.who} wrote with token ${e.token}, which was contender ${g.who}'s`);
    const id = `${e.who}:${e.seq}`;
    if (at.has(id)) problem(`entry #${i}: write ${id} is in the history twice (also #${at.get(id)})`);
    at.set(id, i);
  });
  for (const w of writes) {
    const id = `${w.who}:${w.seq}`;
    if (w.outcome === 'ok' && !at.has(id)) problem(`acknowledged write ${id} (token ${w.token}) is not in the register's history`);
    if ((w.outcome === 'refused' || w.outcome === 'fail') && at.has(id)) problem(`write ${id} (token ${w.token}) is in the history though it was ${w.outcome === 'refused' ? 'refused by the fence' : 'reported failed'}`);
  }
  // The lock's own order: asking after another contender held gives a higher token.
  const byHeld = [...grants].sort((a, b) => a.heldAtMs - b.heldAtMs);
  for (const g of grants) {
    for (const earlier of byHeld) {
      if (earlier.heldAtMs >= g.askedAtMs) break;
      if (earlier !== g && earlier.token >= g.token) problem(`contender ${g.who} asked at ${g.askedAtMs.toFixed(0)} ms, after contender ${earlier.who} held (at ${earlier.heldAtMs.toFixed(0)} ms, token ${earlier.token}), yet got the lower token ${g.token}`);
    }
  }
  let overlaps = 0;
  for (let i = 0; i < byHeld.length; i++) {
    for (let j = i + 1; j < byHeld.length && byHeld[j]!.heldAtMs < (byHeld[i]!.releasedAtMs ?? Infinity); j++) overlaps++;
  }
  return { problems, entries: history.length, holders: grants.length, refused: writes.filter((w) => w.outcome === 'refused').length, overlaps };
}
