// @flotilla/transport — store-to-store raft messaging.
//   transport.ts          Transport interface, TransportStats, TransportError (the store's contract)
//   ws-transport.ts       WsTransport: lifecycle, send/flush, the link table, dialing and backoff, stats, fault hook
//   ws-options.ts         WsTransportOptions with their defaults; resolveOptions checks them and reads the TLS files
//   link.ts               Link: one destination's queue, its raft connection (tie-break), frame batching
//   connection.ts         Connections: the listener, Conn, both halves of the HMAC handshake, keepalive
//   snapshot-sender.ts    SnapshotSender: one outbound snapshot stream (window, acks, Done/Fail)
//   snapshot-receiver.ts  SnapshotReceiver: one inbound snapshot stream, feeding the store's handler
//   snapshot.ts           snapshot channel frames and the receiver's chunk stream
//   local.ts              LocalNetwork / LocalTransport: in-memory, seeded faults, virtual or real time
//   codec.ts              compact binary frame codec for RaftMessage batches
//   handshake.ts          challenge / hello / welcome frames and MACs
export * from './transport';
export { WsTransport, type WsTransportOptions, type TlsOptions, type WsFaults, type AddressResolver, type DestinationBacklog } from './ws-transport';
export { LocalNetwork, LocalTransport, type LocalFaults, type LocalNetworkOptions, type TraceEvent } from './local';
// mulberry32 is raft-core's newSeededRandom (the same generator, so a seed
// replays as before), kept under this name for the sim and chaos runners.
export { newSeededRandom as mulberry32 } from '@flotilla/raft-core';
export { encodeRaftFrame, decodeRaftFrame, FrameWriter, FRAME_KIND_RAFT, FRAME_HEADER_BYTES, MAX_MESSAGES_PER_FRAME } from './codec';
export { CloseCode, PROTOCOL_VERSION } from './handshake';
