// checkBank: Jepsen's bank workload checker. N accounts start with a known
// total; transactions move money between two accounts (never below zero);
// every snapshot read of all the accounts must see the same total and no
// negative balance. A torn read (part of a transfer), a lost update (two
// transfers from one balance both committing) or a write that appeared out
// of nowhere shows up as a wrong total.

/** BankRead is one transaction's snapshot read of every account. */
export interface BankRead {
  txnId: number;
  /** ts: the snapshot's timestamp (read ts or start_ts), when known. */
  ts?: bigint;
  /** balances: account name → balance; an account missing from the map was absent at the snapshot. */
  balances: ReadonlyMap<string, number>;
}

/** BankViolation is one read that broke the invariant. */
export interface BankViolation {
  txnId: number;
  ts?: bigint;
  total: number;
  negative: string[];
  missing: string[];
  explanation: string;
}

export interface BankResult {
  ok: boolean;
  reads: number;
  /** first: the violating read with the lowest ts (the history's first without timestamps). */
  first?: BankViolation;
  violations: number;
  /** sample: up to 10 violations, in ts order. */
  sample: BankViolation[];
}

/** checkBank checks every snapshot read against the initial total over the given accounts. */
export function checkBank(accounts: readonly string[], total: number, reads: readonly BankRead[]): BankResult {
  const bad: BankViolation[] = [];
  for (const r of reads) {
    const missing = accounts.filter((a) => !r.balances.has(a));
    const negative = accounts.filter((a) => (r.balances.get(a) ?? 0) < 0);
    const unknown = [...r.balances.keys()].filter((a) => !accounts.includes(a));
    const sum = [...r.balances.values()].reduce((a, b) => a + b, 0);
    if (sum === total && negative.length === 0 && missing.length === 0 && unknown.length === 0) continue;
    const why = [sum !== total ? `total ${sum}, expected ${total}` : '', negative.length ? `negative: ${negative.map((a) => `${a}=${r.balances.get(a)}`).join(', ')}` : '', missing.length ? `missing: ${missing.join(', ')}` : '', unknown.length ? `not an account: ${unknown.join(', ')}` : ''].filter(Boolean);
    const balances = accounts.map((a) => `${a}=${r.balances.get(a) ?? '-'}`).join(' ');
    bad.push({ txnId: r.txnId, ...(r.ts !== undefined ? { ts: r.ts } : {}), total: sum, negative, missing, explanation: `read T${r.txnId}${r.ts !== undefined ? ` at ts ${r.ts}` : ''}: ${why.join('; ')} (${balances})` });
  }
  const order = [...bad].sort((a, b) => (a.ts === undefined || b.ts === undefined ? 0 : a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
  return { ok: bad.length === 0, reads: reads.length, ...(order[0] ? { first: order[0] } : {}), violations: bad.length, sample: order.slice(0, 10) };
}
