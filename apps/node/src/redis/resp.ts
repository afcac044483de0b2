// resp.ts: the Redis serialization protocol (RESP2 and RESP3), both ways.
// RespParser turns the bytes a client sends into commands (arrays of bulk
// strings, or inline commands typed by hand), incrementally and within
// limits; encodeReply turns a Reply into the bytes of the protocol version
// the connection speaks (HELLO 3 switches a connection to RESP3).

/** RespLimits bound what one command may make the parser hold in memory. */
export interface RespLimits {
  /** maxBulkBytes: the largest bulk string (one argument) accepted. */
  maxBulkBytes: number;
  /** maxArgs: the most arguments in one command (the `*N` header). */
  maxArgs: number;
  /** maxCommandBytes: the most argument bytes in one command, summed. */
  maxCommandBytes: number;
  /** maxInlineBytes: the longest inline command line or `*`/`$` header line. */
  maxInlineBytes: number;
}

/**
 * RespProtocolError: the client sent something that is not RESP or breaks
 * a limit. The connection answers `-ERR Protocol error: ...` and closes,
 * as Redis does: after a framing error nothing later on the socket can be
 * trusted to start at a command boundary, so the malformed command and all
 * after it are dropped (nothing of them is applied).
 */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RespProtocolError';
  }
}

const CR = 13;
const LF = 10;
const EMPTY = Buffer.alloc(0);

/**
 * RespParser is a resumable parser: push() appends what the socket read,
 * next() returns the next complete command (its arguments) or null when
 * more bytes are needed. The state of a half-read multibulk (arguments so
 * far, the length of the bulk being read) survives between pushes, and a
 * large bulk string is copied once into a buffer of its announced size, so
 * a command arriving in many small reads costs linear time. Limits are
 * checked on the headers, before the bytes they announce are buffered.
 */
export class RespParser {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** argsLeft: arguments still to read of the multibulk in progress (-1: between commands). */
  private argsLeft = -1;
  private args: Buffer[] = [];
  private commandBytes = 0;
  /** bulk: the bulk string being filled across pushes (only for ones longer than what was buffered). */
  private bulk: { data: Buffer; filled: number } | undefined;

  constructor(private readonly limits: RespLimits) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (this.bulk) {
      const b = this.bulk;
      const take = Math.min(chunk.length, b.data.length - b.filled);
      chunk.copy(b.data, b.filled, 0, take);
      b.filled += take;
      chunk = chunk.subarray(take);
      if (chunk.length === 0) return;
    }
    if (this.pos >= this.buf.length) this.buf = chunk;
    else this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    this.pos = 0;
  }

  /** pending says whether part of a command has been read but not all of it. */
  get pending(): boolean {
    return this.argsLeft >= 0 || this.bulk !== undefined || this.pos < this.buf.length;
  }

  /** next returns the next complete command, null when more bytes are needed; throws RespProtocolError. */
  next(): Buffer[] | null {
    for (;;) {
      if (this.argsLeft < 0) {
        if (this.pos >= this.buf.length) return null;
        if (this.buf[this.pos] !== 0x2a /* '*' */) {
          const inline = this.readInline();
          if (inline === null) return null;
          if (inline.length === 0) continue; // an empty line, as Redis skips it
          return inline;
        }
        const n = this.readHeader('multibulk');
        if (n === null) return null;
        if (n <= 0) continue; // `*0` and `*-1` are no command, as Redis reads them
        if (n > this.limits.maxArgs) throw new RespProtocolError(`invalid multibulk length (at most ${this.limits.maxArgs} arguments)`);
        this.argsLeft = n;
        this.args = [];
        this.commandBytes = 0;
      }
      while (this.argsLeft > 0) {
        const arg = this.readBulk();
        if (arg === null) return null;
        this.args.push(arg);
        this.argsLeft--;
      }
      const cmd = this.args;
      this.args = [];
      this.argsLeft = -1;
      return cmd;
    }
  }

  /** readBulk reads one `$len\r\n<bytes>\r\n` argument, or returns null for more bytes. */
  private readBulk(): Buffer | null {
    if (this.bulk) {
      const b = this.bulk;
      if (b.filled < b.data.length) return null;
      if (!this.crlfAt(this.pos)) return this.needCrlf();
      this.pos += 2;
      this.bulk = undefined;
      return b.data;
    }
    if (this.pos >= this.buf.length) return null;
    if (this.buf[this.pos] !== 0x24 /* '$' */) throw new RespProtocolError(`expected '$', got '${printable(this.buf[this.pos]!)}'`);
    const start = this.pos;
    const len = this.readHeader('bulk');
    if (len === null) return null;
    if (len < 0 || len > this.limits.maxBulkBytes) {
      throw new RespProtocolError(`invalid bulk length ${len} (at most ${this.limits.maxBulkBytes} bytes; Flotilla's value limit)`);
    }
    this.commandBytes += len;
    if (this.commandBytes > this.limits.maxCommandBytes) throw new RespProtocolError(`command larger than ${this.limits.maxCommandBytes} bytes`);
    const available = this.buf.length - this.pos;
    if (available >= len + 2) {
      const data = Buffer.from(this.buf.subarray(this.pos, this.pos + len)); // a copy: the read buffer is reused
      if (!this.crlfAt(this.pos + len)) throw new RespProtocolError('bulk string not followed by CRLF');
      this.pos += len + 2;
      return data;
    }
    if (available >= len) {
      // The data is here but not its CRLF: wait, re-reading the header next time.
      this.pos = start;
      this.commandBytes -= len;
      return null;
    }
    // A bulk longer than what is buffered: copy what is here into a buffer of its size and fill it on later pushes.
    const data = Buffer.allocUnsafe(len);
    this.buf.copy(data, 0, this.pos);
    this.bulk = { data, filled: available };
    this.pos = this.buf.length;
    return null;
  }

  private crlfAt(i: number): boolean {
    return this.buf[i] === CR && this.buf[i + 1] === LF;
  }

  private needCrlf(): null {
    if (this.buf.length - this.pos >= 2) throw new RespProtocolError('bulk string not followed by CRLF');
    return null;
  }

  /** readHeader reads `*N\r\n` or `$N\r\n` at pos and returns N, or null when the line is incomplete. */
  private readHeader(what: 'multibulk' | 'bulk'): number | null {
    const end = this.buf.indexOf(CR, this.pos + 1);
    if (end < 0 || end + 1 >= this.buf.length) {
      if (this.buf.length - this.pos > this.limits.maxInlineBytes) throw new RespProtocolError(`too big ${what} count string`);
      return null;
    }
    if (this.buf[end + 1] !== LF) throw new RespProtocolError(`${what} length not followed by CRLF`);
    const text = this.buf.toString('latin1', this.pos + 1, end);
    if (!/^-?\d{1,19}$/.test(text)) throw new RespProtocolError(`invalid ${what} length`);
    this.pos = end + 2;
    return Number(text);
  }

  /** readInline reads a command typed by hand (`SET k v\r\n` or `...\n`), split at spaces with "double quotes" honoured. */
  private readInline(): Buffer[] | null {
    const end = this.buf.indexOf(LF, this.pos);
    if (end < 0) {
      if (this.buf.length - this.pos > this.limits.maxInlineBytes) throw new RespProtocolError('too big inline request');
      return null;
    }
    if (end - this.pos > this.limits.maxInlineBytes) throw new RespProtocolError('too big inline request');
    const lineEnd = end > this.pos && this.buf[end - 1] === CR ? end - 1 : end;
    const line = this.buf.subarray(this.pos, lineEnd);
    this.pos = end + 1;
    const args = splitInline(line);
    if (args.length > this.limits.maxArgs) throw new RespProtocolError(`invalid multibulk length (at most ${this.limits.maxArgs} arguments)`);
    return args;
  }
}

function printable(byte: number): string {
  return byte >= 0x20 && byte < 0x7f ? String.fromCharCode(byte) : `\\x${byte.toString(16).padStart(2, '0')}`;
}

/** splitInline splits an inline command line at spaces and tabs; "double quoted" words may hold spaces and \" \\ \n \r \t escapes. */
export function splitInline(line: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let i = 0;
  const isSpace = (b: number | undefined): boolean => b === 0x20 || b === 0x09;
  while (i < line.length) {
    while (isSpace(line[i])) i++;
    if (i >= line.length) break;
    if (line[i] === 0x22 /* '"' */) {
      const bytes: number[] = [];
      i++;
      for (;;) {
        if (i >= line.length) throw new RespProtocolError('unbalanced quotes in request');
        const b = line[i]!;
        if (b === 0x22) {
          i++;
          if (i < line.length && !isSpace(line[i])) throw new RespProtocolError('unbalanced quotes in request');
          break;
        }
        if (b === 0x5c /* '\' */ && i + 1 < line.length) {
          const e = line[i + 1]!;
          bytes.push(e === 0x6e ? LF : e === 0x72 ? CR : e === 0x74 ? 0x09 : e);
          i += 2;
          continue;
        }
        bytes.push(b);
        i++;
      }
      out.push(Buffer.from(bytes));
      continue;
    }
    const start = i;
    while (i < line.length && !isSpace(line[i])) i++;
    out.push(Buffer.from(line.subarray(start, i)));
  }
  return out;
}

// ---- replies ------------------------------------------------------------

/**
 * Reply is what a command answers, independent of the protocol version:
 * RESP2 writes a map as a flat array and every null as `$-1` (`*-1` for a
 * null array); RESP3 has its own map, null and boolean types.
 */
export type Reply =
  | { type: 'simple'; value: string }
  | { type: 'error'; value: string }
  | { type: 'integer'; value: number | bigint }
  | { type: 'bulk'; value: Uint8Array | null }
  | { type: 'array'; value: Reply[] | null }
  | { type: 'map'; value: [Reply, Reply][] }
  /** push: an out-of-band message (pub/sub): RESP3's `>` push type, a plain array in RESP2. */
  | { type: 'push'; value: Reply[] }
  /** seq: several replies in a row for one command (SUBSCRIBE a b answers one per channel); none for an empty one. */
  | { type: 'seq'; value: Reply[] };

export const reply = {
  ok: { type: 'simple', value: 'OK' } as Reply,
  nil: { type: 'bulk', value: null } as Reply,
  simple: (value: string): Reply => ({ type: 'simple', value }),
  error: (value: string): Reply => ({ type: 'error', value }),
  integer: (value: number | bigint): Reply => ({ type: 'integer', value }),
  bulk: (value: Uint8Array | string | null): Reply => ({ type: 'bulk', value: typeof value === 'string' ? Buffer.from(value) : value }),
  array: (value: Reply[] | null): Reply => ({ type: 'array', value }),
  map: (value: [Reply, Reply][]): Reply => ({ type: 'map', value }),
  push: (value: Reply[]): Reply => ({ type: 'push', value }),
  seq: (value: Reply[]): Reply => ({ type: 'seq', value }),
  /** strMap: a map of text keys to replies (HELLO, COMMAND DOCS). */
  strMap: (entries: [string, Reply][]): Reply => ({ type: 'map', value: entries.map(([k, v]) => [reply.bulk(k), v]) }),
};

/** Protocol: 2 (RESP2, every connection starts here) or 3 (after HELLO 3). */
export type Protocol = 2 | 3;

/** encodeReply appends the bytes of r in the given protocol version to out. */
export function encodeReply(r: Reply, protocol: Protocol, out: Buffer[]): void {
  switch (r.type) {
    case 'simple':
      out.push(Buffer.from(`+${oneLine(r.value)}\r\n`));
      return;
    case 'error':
      out.push(Buffer.from(`-${oneLine(r.value)}\r\n`));
      return;
    case 'integer':
      out.push(Buffer.from(`:${r.value}\r\n`));
      return;
    case 'bulk':
      if (r.value === null) {
        out.push(Buffer.from(protocol === 3 ? '_\r\n' : '$-1\r\n'));
        return;
      }
      out.push(Buffer.from(`$${r.value.length}\r\n`), Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length), CRLF);
      return;
    case 'array':
      if (r.value === null) {
        out.push(Buffer.from(protocol === 3 ? '_\r\n' : '*-1\r\n'));
        return;
      }
      out.push(Buffer.from(`*${r.value.length}\r\n`));
      for (const item of r.value) encodeReply(item, protocol, out);
      return;
    case 'map':
      out.push(Buffer.from(protocol === 3 ? `%${r.value.length}\r\n` : `*${r.value.length * 2}\r\n`));
      for (const [k, v] of r.value) {
        encodeReply(k, protocol, out);
        encodeReply(v, protocol, out);
      }
      return;
    case 'push':
      out.push(Buffer.from(`${protocol === 3 ? '>' : '*'}${r.value.length}\r\n`));
      for (const item of r.value) encodeReply(item, protocol, out);
      return;
    case 'seq':
      for (const item of r.value) encodeReply(item, protocol, out);
      return;
  }
}

const CRLF = Buffer.from('\r\n');

/** oneLine keeps a simple string or error on one line: CR and LF would end the reply early. */
function oneLine(s: string): string {
  return /[\r\n]/.test(s) ? s.replace(/[\r\n]+/g, ' ') : s;
}

/** encodeCommand writes a command as a RESP array of bulk strings (what clients send; tests and benches use it). */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = typeof a === 'string' ? Buffer.from(a) : Buffer.from(a.buffer, a.byteOffset, a.length);
    parts.push(Buffer.from(`$${b.length}\r\n`), b, CRLF);
  }
  return Buffer.concat(parts);
}
