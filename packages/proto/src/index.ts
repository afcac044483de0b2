// @flotilla/proto — domain and wire types shared by every package.
//   region.ts   Region, Peer, RegionEpoch, Store
//   keys.ts     byte-order key comparison and range membership
//   message.ts  RaftMessage, the store-to-store envelope
//   command.ts  client and admin commands, RaftCmdRequest
//   txn.ts      the transactional keyspace: Percolator commands, snapshot reads, key errors
//   watch.ts    change feeds of the transactional keyspace: frames on /watch, feed errors, WATCH_LIMITS
//   errors.ts   RegionError (typed, retryable), FlotillaError, DecodeError
//   codec.ts    msgpackr encode/decode with typed DecodeError
//   schema.ts   zod schemas for everything arriving from outside the process
//   logger.ts   Logger (pino's (obj, msg?) shape), silentLogger, childLogger
//   rate-limited-log.ts  RateLimitedLog: one line per source and window for repeated refusals
//   server-limits.ts     header timeouts, ConnectionGuard (limit + 503), AnswerWindow (stop reading)
export * from './region';
export * from './keys';
export * from './message';
export * from './command';
export * from './txn';
export * from './watch';
export * from './errors';
export * from './codec';
export * from './schema';
export * from './logger';
export * from './rate-limited-log';
export * from './server-limits';
