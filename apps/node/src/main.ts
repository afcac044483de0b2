// main.ts: the `flotilla` process. `pnpm flotilla ...` and bin/flotilla.mjs
// both land here; child processes of `flotilla up` run it through
// `node --import tsx`.
import { run } from './cli';

const code = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: () => process.stdin });
// Let buffered output drain, then exit with the command's status even if a socket or timer is still open.
process.stdout.write('', () => process.stderr.write('', () => process.exit(code)));
