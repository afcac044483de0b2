// @flotilla/transport — store-to-store raft messaging.
//   transport.ts     Transport interface, TransportStats, TransportError (the store's contract)
//   ws-transport.ts  WsTransport: WebSocket, HMAC handshake, batching, backoff, snapshot channel
//   local.ts         LocalNetwork / LocalTransport: in-memory, seeded faults, virtual or real time
//   codec.ts         compact binary frame codec for RaftMessage batches
//   handshake.ts     challenge / hello / welcome frames and MACs
//   snapshot.ts      snapshot channel frames and the receiver's chunk stream
export * from './transport';
export { WsTransport, type WsTransportOptions, type TlsOptions, type WsFaults, type AddressResolver, type DestinationBacklog } from './ws-transport';
export { LocalNetwork, LocalTransport, type LocalFaults, type LocalNetworkOptions, type TraceEvent } from './local';
// mulberry32 is raft-core's newSeededRandom (the same generator, so a seed
// replays as before), kept under this name for the sim and chaos runners.
export { newSeededRandom as mulberry32 } from '@flotilla/raft-core';
export { encodeRaftFrame, decodeRaftFrame, FrameWriter, FRAME_KIND_RAFT, FRAME_HEADER_BYTES, MAX_MESSAGES_PER_FRAME } from './codec';
export { CloseCode, PROTOCOL_VERSION } from './handshake';
