// @flotilla/placement/client — PlacementClient and the wire types only.
// Importing it does not load the server side (SQLite, HTTP server,
// schedulers), so stores, clients and CLI commands that only talk to
// placement start faster. The package root re-exports all of this too.
export { PlacementClient, type PlacementClientOptions } from './client';
export { PlacementError, PlacementErrorCode } from './errors';
export { renderKey, parseKey } from './http';
export type * from './types';
export { LOGICAL_BITS, LOGICAL_LIMIT, composeTs, splitTs } from './tso/timestamp';
export type { LeaseAttachResult } from './lease/types';
