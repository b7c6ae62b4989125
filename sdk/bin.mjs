#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader (a build step replaces this in the SDK issue).
import { register } from 'tsx/esm/api';
register();
await import('./cli.ts');
