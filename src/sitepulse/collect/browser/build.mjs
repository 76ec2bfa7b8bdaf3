// Builds ../static/sp.js (our collector plus web-vitals, one minified IIFE) and
// ../static/sp.js.size.json with its gzipped sizes. Run with `npm run build`.
//
// "Our own code" is measured by bundling the same source again with web-vitals
// left external, as an ES module: that output is exactly our code plus the one
// import line, without web-vitals and without the IIFE wrapper. The build exits
// non-zero, and leaves sp.js alone, when that is not under OWN_GZIP_LIMIT.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const OWN_GZIP_LIMIT = 4096;
const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, '..', 'static');

const options = {
  entryPoints: [join(here, 'sp.src.js')],
  bundle: true,
  minify: true,
  target: 'es2017',
  write: false,
  logLevel: 'warning',
};

const text = async (extra) => (await build({ ...options, ...extra })).outputFiles[0].contents;
const bundle = await text({
  format: 'iife',
  // web-vitals is Apache-2.0: the notice travels with the copy we serve.
  banner: { js: '/*! sitepulse sp.js | includes web-vitals, Apache-2.0, (c) Google LLC */' },
});
const own = await text({ format: 'esm', external: ['web-vitals'] });

const sizes = {
  bundle_bytes: bundle.length,
  bundle_gzip_bytes: gzipSync(bundle).length,
  own_bytes: own.length,
  own_gzip_bytes: gzipSync(own).length,
  own_gzip_limit_bytes: OWN_GZIP_LIMIT,
};
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'sp.js.size.json'), JSON.stringify(sizes, null, 2) + '\n');

if (sizes.own_gzip_bytes >= OWN_GZIP_LIMIT) {
  console.error(`sp.js: our own code is ${sizes.own_gzip_bytes} B gzipped, over the ${OWN_GZIP_LIMIT} B budget`);
  process.exit(1);
}
writeFileSync(join(outDir, 'sp.js'), bundle);
console.log(`sp.js: ${sizes.bundle_gzip_bytes} B gzipped (own code ${sizes.own_gzip_bytes} B of ${OWN_GZIP_LIMIT})`);
