// Bundle size: each entry point bundled with esbuild (ESM, minified, as an
// app's bundler would), gzipped at level 9, next to socket.io-client's
// browser bundle (dist/socket.io.min.js, a devDependency pinned in
// package-lock.json). Prints a table; with --json, the figures as JSON.
// Run after the build: `npm run build && npm run size`.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const pkg = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(pkg, 'package.json'));

export async function measure() {
  const out = {};
  for (const [name, entry] of [['@tether-run/client', 'dist/index.js'], ['@tether-run/client/worker', 'dist/worker.js']]) {
    const r = await build({ entryPoints: [join(pkg, entry)], bundle: true, minify: true, format: 'esm', target: 'es2020', write: false, logLevel: 'silent' });
    const code = r.outputFiles[0].contents;
    out[name] = { min: code.length, gzip: gzipSync(code, { level: 9 }).length };
  }
  const sioDir = dirname(require.resolve('socket.io-client/package.json'));
  const sio = readFileSync(join(sioDir, 'dist/socket.io.min.js'));
  const sioVersion = JSON.parse(readFileSync(join(sioDir, 'package.json'), 'utf8')).version;
  out[`socket.io-client ${sioVersion} (dist/socket.io.min.js)`] = { min: sio.length, gzip: gzipSync(sio, { level: 9 }).length };
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const m = await measure();
  if (process.argv.includes('--json')) console.log(JSON.stringify(m, null, 2));
  else {
    console.log('bundle                                               min bytes  min+gzip bytes');
    for (const [k, v] of Object.entries(m)) console.log(`${k.padEnd(52)} ${String(v.min).padStart(9)}  ${String(v.gzip).padStart(14)}`);
  }
}
