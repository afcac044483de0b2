// STORE_BUGS.md #1 reproduction (fixed in 65a7696; kept as a quick check):
// node --import tsx packages/sim/repro/stale-peer.ts — exit 0 = fixed, 1 = the bug is back.
import { removedPeerIsReAdded } from '../src/scenarios';

removedPeerIsReAdded((l) => console.error(l)).then(
  (r) => {
    console.error(r.report);
    process.exitCode = r.ok ? 0 : 1;
  },
  (e) => {
    console.error(e);
    process.exitCode = 2;
  },
);
