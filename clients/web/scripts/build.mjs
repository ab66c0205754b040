// Builds dist/: index.js (one ES module, bundled by esbuild, readable; the
// page's bundler or the size test minifies it) and the .d.ts files (tsc,
// which type-checks src/ on the way).
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
rmSync(`${root}/dist`, { recursive: true, force: true });
await build({
  entryPoints: [`${root}/src/index.ts`],
  outfile: `${root}/dist/index.js`,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
});
execFileSync(`${root}/node_modules/.bin/tsc`, ['-p', root], { stdio: 'inherit' });
