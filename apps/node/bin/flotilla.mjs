#!/usr/bin/env node
// flotilla: the CLI entry point. The CLI is TypeScript source run through
// tsx's ESM loader, registered here so `flotilla` works as an installed bin
// without a build step.
import { register } from 'tsx/esm/api';

register();
await import('../src/main.ts');
