// npm test: build the SDK, build tether from this checkout, run every test
// (node's test runner; the Chromium tests are node tests that drive
// playwright-core). Installs nothing: scripts/deps.sh does that.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..');
const root = resolve(pkg, '../..');
const bin = mkdtempSync(join(tmpdir(), 'tether-js-bin-'));
const started = Date.now();
try {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: pkg, stdio: 'inherit' });
  for (const cmd of ['tether', 'tether-worker']) {
    execFileSync('go', ['build', '-o', join(bin, cmd), './cmd/' + cmd], { cwd: root, stdio: 'inherit' });
  }
  console.log(`built SDK and tether in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  const args = ['--test', '--test-concurrency=1', '--test-timeout=120000'];
  if (typeof globalThis.WebSocket === 'undefined') args.push('--experimental-websocket');
  const only = process.argv.slice(2);
  // Named explicitly: given a directory, node 20 runs every .mjs under a test/ folder, fixtures included.
  args.push(...(only.length ? only : readdirSync(join(pkg, 'test')).filter((f) => f.endsWith('.test.mjs')).map((f) => 'test/' + f)));
  const r = spawnSync(process.execPath, args, {
    cwd: pkg,
    stdio: 'inherit',
    env: { ...process.env, TETHER_BIN: join(bin, 'tether'), TETHER_WORKER_BIN: join(bin, 'tether-worker') },
  });
  console.log(`npm test: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exitCode = r.status ?? 1;
} finally {
  rmSync(bin, { recursive: true, force: true });
}
