// @flotilla/node — the `flotilla` CLI.
//   main.ts           process entry (bin/flotilla.mjs registers tsx, then imports it)
//   cli.ts            command table, dispatch, exit codes (0 ok, 1 failure, 2 usage)
//   args.ts           flags from argv / FLOTILLA_* env / --config JSON, validated with zod; --help text
//   command.ts        Command interface, Io, graceful shutdown on SIGINT/SIGTERM
//   commands/         placement, store, up, put/get/del/scan/cas/split, regions/stores, demo split
//   local-cluster.ts  LocalCluster: placement + N stores as child processes, health waits, clean stop
//   cluster-file.ts   <data-dir>/cluster.json: endpoints of a running local cluster
//   target.ts         how ctl commands find the cluster (--placement or cluster.json)
//   format.ts         tables, byte sizes, key/value rendering
export { run, COMMANDS, topHelp } from './cli';
export { LocalCluster, cliCommand, httpOk, type LocalClusterOptions } from './local-cluster';
export { readClusterFile, type ClusterFile } from './cluster-file';
export { makeLogger } from './logger';
