#!/usr/bin/env node
// flotilla: the CLI entry point in the repository. The CLI is TypeScript
// source run through tsx's ESM loader, registered here so `flotilla` works as
// a workspace bin without a build step. The packed @flotilla/node's bin is
// the bundle, dist/flotilla.js (publishConfig; docs/packaging.md).
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
