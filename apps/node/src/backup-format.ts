import { LIMITS, compareKeys } from '@flotilla/proto';

// backup-format.ts: the file `flotilla backup` writes and `flotilla restore`
// reads (docs/operations.md, "Logical backup format"). JSON lines, UTF-8,
// one object per line ending in "\n":
//
//   {"format":"flotilla-backup","version":1,"createdAt":"2026-01-02T03:04:05.000Z"}
//   {"k":"<base64 key>","v":"<base64 value>"}        one per pair, keys strictly increasing
//   {"end":true,"pairs":2,"keyBytes":9,"valueBytes":14}
//
// Keys and values are raw bytes in standard base64 (RFC 4648 §4, padded), so
// any byte string round-trips exactly; the trailer makes a truncated file
// detectable. A reader refuses any version it does not know.
//
// Version 2 is a backup of the transactional keyspace at one timestamp
// (`flotilla backup --ts`): the header adds the keyspace and the read ts
// (a decimal string: it exceeds a JSON number's exact range), the lines are
// the same. A version-1 file is the raw keyspace, as before.
//
//   {"format":"flotilla-backup","version":2,"createdAt":"...","keyspace":"txn","ts":"470861546608132096"}

/** BACKUP_FORMAT names the file kind in the header line. */
export const BACKUP_FORMAT = 'flotilla-backup';
/** BACKUP_VERSION: the raw keyspace's version (what `flotilla backup` writes). */
export const BACKUP_VERSION = 1;
/** TXN_BACKUP_VERSION: a transactional keyspace snapshot at one timestamp (`flotilla backup --ts`). */
export const TXN_BACKUP_VERSION = 2;

/** BackupHeader: what line 1 says. keyspace 'txn' comes with the ts the snapshot was read at. */
export interface BackupHeader {
  version: number;
  createdAt: string;
  keyspace: 'raw' | 'txn';
  ts?: bigint;
}
/** MAX_LINE_BYTES bounds one line: the largest pair in base64 (4/3 of key + value limits) plus the JSON around it. */
export const MAX_LINE_BYTES = Math.ceil(((LIMITS.maxKeyBytes + LIMITS.maxValueBytes) * 4) / 3) + 1024;

/** BackupFormatError: the file is not a backup this build can restore; the message says where and why. */
export class BackupFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackupFormatError';
  }
}

export interface BackupPair {
  key: Uint8Array;
  value: Uint8Array;
}

export interface BackupTotals {
  pairs: number;
  keyBytes: number;
  valueBytes: number;
}

const b64 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');

export function headerLine(createdAt: Date, txnTs?: bigint): string {
  if (txnTs === undefined) return JSON.stringify({ format: BACKUP_FORMAT, version: BACKUP_VERSION, createdAt: createdAt.toISOString() }) + '\n';
  return JSON.stringify({ format: BACKUP_FORMAT, version: TXN_BACKUP_VERSION, createdAt: createdAt.toISOString(), keyspace: 'txn', ts: txnTs.toString() }) + '\n';
}

export function pairLine(p: BackupPair): string {
  return JSON.stringify({ k: b64(p.key), v: b64(p.value) }) + '\n';
}

export function trailerLine(t: BackupTotals): string {
  return JSON.stringify({ end: true, pairs: t.pairs, keyBytes: t.keyBytes, valueBytes: t.valueBytes }) + '\n';
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** decodeBase64 accepts canonical padded base64 only (Buffer.from would silently skip bad characters). */
function decodeBase64(text: unknown, where: string): Uint8Array {
  if (typeof text !== 'string' || !BASE64.test(text)) throw new BackupFormatError(`${where}: not base64`);
  return new Uint8Array(Buffer.from(text, 'base64'));
}

function parseObject(line: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new BackupFormatError(`${where}: not a JSON line`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BackupFormatError(`${where}: not a JSON object`);
  return v as Record<string, unknown>;
}

/** checkHeader reads line 1: a flotilla backup of a version this build knows, or a clear refusal. */
export function checkHeader(line: string, source: string): BackupHeader {
  let h: Record<string, unknown>;
  try {
    h = parseObject(line, `${source}:1`);
  } catch {
    throw new BackupFormatError(`${source}: not a flotilla backup (line 1 is not the JSON header {"format":"${BACKUP_FORMAT}",...})`);
  }
  if (h['format'] !== BACKUP_FORMAT) throw new BackupFormatError(`${source}: not a flotilla backup (line 1 has format ${JSON.stringify(h['format'])}, expected "${BACKUP_FORMAT}")`);
  if (h['version'] !== BACKUP_VERSION && h['version'] !== TXN_BACKUP_VERSION) {
    throw new BackupFormatError(`${source}: backup format version ${JSON.stringify(h['version'])} is not supported; this flotilla reads versions ${BACKUP_VERSION} and ${TXN_BACKUP_VERSION} only (restore with the flotilla release that wrote the file, or a newer one)`);
  }
  const createdAt = typeof h['createdAt'] === 'string' ? h['createdAt'] : '';
  if (h['version'] === BACKUP_VERSION) return { version: BACKUP_VERSION, createdAt, keyspace: 'raw' };
  const ts = h['ts'];
  if (h['keyspace'] !== 'txn' || typeof ts !== 'string' || !/^[1-9][0-9]{0,18}$/.test(ts)) {
    throw new BackupFormatError(`${source}: a version ${TXN_BACKUP_VERSION} header needs "keyspace":"txn" and "ts" as a decimal timestamp string`);
  }
  return { version: TXN_BACKUP_VERSION, createdAt, keyspace: 'txn', ts: BigInt(ts) };
}

/**
 * BackupReader checks a backup line by line: header first, then pairs in
 * strictly increasing key order within the size limits, then a trailer
 * whose totals match, then nothing. Each line after the header yields its
 * pair (or null for the trailer); finish() throws if the trailer never came.
 */
export class BackupReader {
  private lineNo = 0;
  private previous: Uint8Array | null = null;
  private ended = false;
  readonly totals: BackupTotals = { pairs: 0, keyBytes: 0, valueBytes: 0 };
  header: BackupHeader | undefined;

  constructor(private readonly source: string) {}

  /** line takes one line without its "\n". */
  line(text: string): BackupPair | null {
    this.lineNo++;
    const where = `${this.source}:${this.lineNo}`;
    if (this.lineNo === 1) {
      this.header = checkHeader(text, this.source);
      return null;
    }
    if (this.ended) throw new BackupFormatError(`${where}: data after the trailer line`);
    const o = parseObject(text, where);
    if (o['end'] === true) return this.trailer(o, where);
    const key = decodeBase64(o['k'], `${where}: k`);
    const value = decodeBase64(o['v'], `${where}: v`);
    if (Object.keys(o).length !== 2) throw new BackupFormatError(`${where}: a pair line has exactly the fields k and v`);
    if (key.length === 0 || key.length > LIMITS.maxKeyBytes) throw new BackupFormatError(`${where}: key of ${key.length} bytes (keys are 1 to ${LIMITS.maxKeyBytes} bytes)`);
    if (value.length > LIMITS.maxValueBytes) throw new BackupFormatError(`${where}: value of ${value.length} bytes exceeds the limit of ${LIMITS.maxValueBytes}`);
    if (this.previous && compareKeys(this.previous, key) >= 0) throw new BackupFormatError(`${where}: key out of order (keys must strictly increase)`);
    this.previous = key;
    this.totals.pairs++;
    this.totals.keyBytes += key.length;
    this.totals.valueBytes += value.length;
    return { key, value };
  }

  private trailer(o: Record<string, unknown>, where: string): null {
    const t = this.totals;
    if (o['pairs'] !== t.pairs || o['keyBytes'] !== t.keyBytes || o['valueBytes'] !== t.valueBytes) {
      throw new BackupFormatError(`${where}: the trailer counts ${String(o['pairs'])} pairs (${String(o['keyBytes'])} key bytes, ${String(o['valueBytes'])} value bytes) but the file holds ${t.pairs} (${t.keyBytes}, ${t.valueBytes})`);
    }
    this.ended = true;
    return null;
  }

  /** finish: the input ended; it must have ended right after the trailer. */
  finish(): BackupTotals {
    if (this.lineNo === 0) throw new BackupFormatError(`${this.source}: empty file, not a flotilla backup`);
    if (!this.ended) throw new BackupFormatError(`${this.source}: truncated after ${this.totals.pairs} pairs (no trailer line); the backup did not finish or the file was cut`);
    return this.totals;
  }
}

/**
 * lines splits a byte stream on "\n" into UTF-8 lines, refusing a line
 * longer than maxLineBytes (so a damaged file cannot exhaust memory) and a
 * last line without its "\n" (a cut file).
 */
export async function* lines(input: AsyncIterable<Buffer | string>, source: string, maxLineBytes = MAX_LINE_BYTES): AsyncGenerator<string> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let lineNo = 0;
  for await (const raw of input) {
    let chunk = typeof raw === 'string' ? Buffer.from(raw) : raw;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a)) {
      if (pendingBytes + nl > maxLineBytes) throw new BackupFormatError(`${source}:${lineNo + 1}: line longer than ${maxLineBytes} bytes`);
      pending.push(chunk.subarray(0, nl));
      lineNo++;
      yield Buffer.concat(pending).toString('utf8');
      pending = [];
      pendingBytes = 0;
      chunk = chunk.subarray(nl + 1);
    }
    pendingBytes += chunk.length;
    if (pendingBytes > maxLineBytes) throw new BackupFormatError(`${source}:${lineNo + 1}: line longer than ${maxLineBytes} bytes`);
    if (chunk.length > 0) pending.push(chunk);
  }
  if (pendingBytes > 0) throw new BackupFormatError(`${source}:${lineNo + 1}: the last line has no newline (the file was cut)`);
}
