// What ships: the built JavaScript's size, the tarball `npm pack` makes, and
// the types against the API's openapi.yaml. Run after `npm run build`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { transform } from 'esbuild';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SIZE_LIMIT = 4096;

test(`the built JavaScript is at most ${SIZE_LIMIT} bytes minified and gzipped`, async (t) => {
  const built = readFileSync(join(ROOT, 'dist/index.js'), 'utf8');
  const { code } = await transform(built, { minify: true, format: 'esm', target: 'es2020' });
  const gzipped = gzipSync(code, { level: 9 }).length;
  t.diagnostic(`dist/index.js: ${built.length} B, minified ${code.length} B, minified+gzipped ${gzipped} B (limit ${SIZE_LIMIT})`);
  assert.ok(gzipped <= SIZE_LIMIT, `${gzipped} B minified+gzipped is over ${SIZE_LIMIT} B`);
  assert.doesNotMatch(built, /\bimport\s*[{*\w]|\brequire\(/, 'no runtime dependency: the bundle imports nothing');
});

test('npm pack holds only dist/ (JavaScript and types), the README and the licence', () => {
  const manifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.equal(manifest.dependencies, undefined, 'no runtime dependencies');
  assert.equal(manifest.peerDependencies, undefined, 'no peer dependencies');
  const out = mkdtempSync(join(tmpdir(), 'connect-web-pack-'));
  try {
    const [packed] = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', out],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
    const files = execFileSync('tar', ['tzf', join(out, packed.filename)], { encoding: 'utf8' })
      .split('\n').filter(Boolean).map((file) => file.replace(/^package\//, '')).sort();
    assert.deepEqual(files, [
      'LICENSE',
      'README.md',
      'dist/button.d.ts',
      'dist/client.d.ts',
      'dist/index.d.ts',
      'dist/index.js',
      'dist/openapi.d.ts',
      // npm always packs the manifest.
      'package.json',
    ]);
    assert.match(readFileSync(join(ROOT, 'LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('src/openapi.ts is what openapi-typescript makes of openapi.yaml now', () => {
  const out = mkdtempSync(join(tmpdir(), 'connect-web-types-'));
  try {
    const fresh = join(out, 'openapi.ts');
    execFileSync(join(ROOT, 'node_modules/.bin/openapi-typescript'), [join(ROOT, '../../openapi.yaml'), '--output', fresh],
      { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    const committed = readFileSync(join(ROOT, 'src/openapi.ts'), 'utf8');
    assert.ok(committed === readFileSync(fresh, 'utf8'),
      'src/openapi.ts differs from openapi.yaml: run `npm run generate` in clients/web and commit the result');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
