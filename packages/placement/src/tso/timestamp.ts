// Hybrid timestamps in TiKV's layout: physical milliseconds since the Unix
// epoch in the high bits, an 18-bit logical counter in the low bits.
//
//   ts = physicalMs << 18 | logical        (0 <= logical < 2^18)
//
// Physical milliseconds need ~41 bits today, so a timestamp needs ~59 bits:
// more than a JavaScript number holds exactly (53). The client API hands
// out bigint; the wire carries the two halves as plain numbers
// ({physicalMs, firstLogical, count}, as PD's pdpb.Timestamp carries
// physical and logical), which every msgpack reader decodes exactly.

/** LOGICAL_BITS is the width of the logical part (TiKV / PD: 18). */
export const LOGICAL_BITS = 18;
/** LOGICAL_LIMIT: logical values are in [0, LOGICAL_LIMIT). */
export const LOGICAL_LIMIT = 1 << LOGICAL_BITS;

/**
 * TimestampRange is what the placement leader answers getTimestamps with:
 * `count` consecutive timestamps sharing one physical part, whose logical
 * parts are firstLogical .. firstLogical + count - 1. A range never crosses
 * a physical millisecond, so firstLogical + count <= LOGICAL_LIMIT.
 */
export interface TimestampRange {
  physicalMs: number;
  firstLogical: number;
  count: number;
}

/** composeTs builds the 64-bit hybrid timestamp. */
export function composeTs(physicalMs: number, logical: number): bigint {
  return (BigInt(physicalMs) << BigInt(LOGICAL_BITS)) | BigInt(logical);
}

/** splitTs is composeTs's inverse. */
export function splitTs(ts: bigint): { physicalMs: number; logical: number } {
  return { physicalMs: Number(ts >> BigInt(LOGICAL_BITS)), logical: Number(ts & BigInt(LOGICAL_LIMIT - 1)) };
}

/** firstOf / lastOf: the smallest and largest timestamp of a range. */
export function firstOf(r: TimestampRange): bigint {
  return composeTs(r.physicalMs, r.firstLogical);
}
export function lastOf(r: TimestampRange): bigint {
  return composeTs(r.physicalMs, r.firstLogical + r.count - 1);
}

/** isValidRange checks a range read off the wire before the client trusts it. */
export function isValidRange(r: unknown): r is TimestampRange {
  if (typeof r !== 'object' || r === null) return false;
  const { physicalMs, firstLogical, count } = r as Record<string, unknown>;
  return (
    Number.isSafeInteger(physicalMs) &&
    (physicalMs as number) > 0 &&
    Number.isInteger(firstLogical) &&
    (firstLogical as number) >= 0 &&
    Number.isInteger(count) &&
    (count as number) >= 1 &&
    (firstLogical as number) + (count as number) <= LOGICAL_LIMIT
  );
}
