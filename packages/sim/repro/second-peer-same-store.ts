// STORE_BUGS.md #5 reproduction: node --import tsx packages/sim/repro/second-peer-same-store.ts
// Exit 0 = fixed (the conf change is refused), 1 = the bug is present.
import { secondPeerOnOneStoreIsRejected } from '../src/scenarios';

secondPeerOnOneStoreIsRejected().then(
  (r) => {
    console.error(r.report);
    process.exitCode = r.ok ? 0 : 1;
  },
  (e) => {
    console.error(e);
    process.exitCode = 2;
  },
);
