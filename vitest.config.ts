import { defineConfig } from 'vitest/config';

// One runner for the whole monorepo. Packages resolve each other through
// their package.json "exports" (TypeScript source), so no build is needed.
//
// Two groups. Vitest's default on a 2-core machine is one worker (cores - 1),
// which ran the suite file by file although most files spend their time
// waiting on real processes, elections and sockets; the main group runs two
// files at a time. The exclusive group runs afterwards, one file at a time:
// the whole-cluster fault runs (chaos with partitions, power loss, the
// network-namespace cluster, Ctrl-C through pnpm) whose liveness bounds assume
// the machine is theirs.
const EXCLUSIVE = ['packages/sim/test/chaos.test.ts', 'packages/sim/test/txn-chaos.test.ts', 'packages/sim/test/chaos-watch.test.ts', 'packages/sim/test/chaos-lock.test.ts', 'packages/sim/test/powerloss.test.ts', 'packages/sim/test/netns.test.ts', 'apps/node/test/up-signals.test.ts'];
const INCLUDE = ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'scripts/test/**/*.test.ts'];

const shared = {
  // Bundles the CLI once so test children start without tsx (scripts/vitest-setup.mjs).
  globalSetup: ['scripts/vitest-setup.mjs'],
  pool: 'forks' as const,
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      { test: { ...shared, name: 'main', include: INCLUDE, exclude: ['**/node_modules/**', ...EXCLUSIVE], maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { test: { ...shared, name: 'exclusive', include: EXCLUSIVE, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
