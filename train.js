#!/usr/bin/env node
// Thin shim: runs the compiled CLI (built by `npm install` through the `prepare` script).
import { existsSync } from 'node:fs';
const entry = new URL('./dist/src/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  console.error('train.js: dist/ is missing (expected the compiled CLI). Run `npm install` or `npm run build` first.');
  process.exit(1);
}
const { main } = await import(entry.href);
await main(process.argv.slice(2));
