import { defineConfig } from 'vitest/config';

// One runner for the whole monorepo. Packages resolve each other through
// their package.json "exports" (TypeScript source), so no build is needed.
export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'apps/*/test/**/*.test.ts', 'scripts/test/**/*.test.ts'],
    pool: 'forks',
    // Bundles the CLI once so test children start without tsx (scripts/vitest-setup.mjs).
    globalSetup: ['scripts/vitest-setup.mjs'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
