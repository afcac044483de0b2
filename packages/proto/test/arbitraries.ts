import fc from 'fast-check';
import type { Message } from '@flotilla/raft-core';
import type { ClientRequest, Peer, RaftMessage, Region } from '@flotilla/proto';

// Generators for the property tests. Byte fields come out as Uint8Array.
export const bytes = (max = 32) => fc.uint8Array({ maxLength: max });
export const nonEmptyBytes = (max = 32) => fc.uint8Array({ minLength: 1, maxLength: max });
const id = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const u64 = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

export const peerArb: fc.Arbitrary<Peer> = fc.record({
  id,
  storeId: id,
  role: fc.constantFrom('voter' as const, 'learner' as const),
});
export const regionArb: fc.Arbitrary<Region> = fc.record({
  id,
  startKey: bytes(),
  endKey: bytes(),
  epoch: fc.record({ confVer: u64, version: u64 }),
  peers: fc.array(peerArb, { maxLength: 7 }),
});
const entryArb = fc.record(
  {
    entryType: fc.constantFrom(0 as const, 1 as const, 2 as const),
    term: u64,
    index: u64,
    data: bytes(64),
    context: bytes(8),
  },
  { requiredKeys: ['entryType', 'term', 'index', 'data'] },
);
export const messageArb: fc.Arbitrary<Message> = fc.record(
  {
    msgType: fc.integer({ min: 0, max: 18 }) as fc.Arbitrary<Message['msgType']>,
    to: u64,
    from: u64,
    term: u64,
    logTerm: u64,
    index: u64,
    entries: fc.array(entryArb, { maxLength: 4 }),
    commit: u64,
    commitTerm: u64,
    requestSnapshot: u64,
    reject: fc.boolean(),
    rejectHint: u64,
    priority: fc.integer({ min: -1000, max: 1000 }),
    context: bytes(8),
    snapshot: fc.record({
      data: bytes(64),
      metadata: fc.record({
        index: u64,
        term: u64,
        confState: fc.record({
          voters: fc.array(u64, { maxLength: 5 }),
          learners: fc.array(u64, { maxLength: 3 }),
          votersOutgoing: fc.array(u64, { maxLength: 5 }),
          learnersNext: fc.array(u64, { maxLength: 3 }),
          autoLeave: fc.boolean(),
        }),
      }),
    }),
  },
  {
    requiredKeys: ['msgType', 'to', 'from', 'term', 'logTerm', 'index', 'entries', 'commit', 'commitTerm', 'requestSnapshot', 'reject', 'rejectHint', 'priority'],
  },
);
export const raftMessageArb: fc.Arbitrary<RaftMessage> = fc.record({
  regionId: id,
  fromPeer: peerArb,
  toPeer: peerArb,
  regionEpoch: fc.record({ confVer: u64, version: u64 }),
  message: messageArb,
  startKey: bytes(),
  endKey: bytes(),
  isTombstone: fc.boolean(),
});
const header = fc.record({ regionId: id, regionEpoch: fc.record({ confVer: u64, version: u64 }) });
export const clientRequestArb: fc.Arbitrary<ClientRequest> = fc.oneof(
  fc.record({
    id: u64,
    header,
    op: fc.constant('read' as const),
    read: fc.oneof(
      fc.record({ type: fc.constant('get' as const), key: nonEmptyBytes() }),
      fc.record({ type: fc.constant('batchGet' as const), keys: fc.array(nonEmptyBytes(), { minLength: 1, maxLength: 5 }) }),
      fc.record({ type: fc.constant('scan' as const), startKey: bytes(), endKey: bytes(), limit: fc.integer({ min: 1, max: 1000 }) }),
    ),
  }),
  fc.record({
    id: u64,
    header,
    op: fc.constant('write' as const),
    writes: fc.array(
      fc.oneof(
        fc.record({ type: fc.constant('put' as const), key: nonEmptyBytes(), value: bytes(128) }),
        fc.record({ type: fc.constant('delete' as const), key: nonEmptyBytes() }),
        fc.record({ type: fc.constant('deleteRange' as const), startKey: bytes(), endKey: bytes() }),
        fc.record({
          type: fc.constant('cas' as const),
          key: nonEmptyBytes(),
          expected: fc.option(bytes(), { nil: null }),
          value: fc.option(bytes(), { nil: null }),
        }),
      ),
      { minLength: 1, maxLength: 5 },
    ),
  }),
);
