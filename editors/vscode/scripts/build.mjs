// Bundles the extension and its npm dependencies into dist/extension.js so the
// .vsix ships no node_modules. `--production` minifies and drops source maps.
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');

await esbuild.build({
    entryPoints: ['src/extension.ts'],
    bundle: true,
    outfile: 'dist/extension.js',
    platform: 'node',
    format: 'cjs',
    // VS Code 1.82 (the minimum in engines.vscode) runs extensions on Node 18.
    target: 'node18',
    external: ['vscode'],
    minify: production,
    sourcemap: !production,
    sourcesContent: false,
    logLevel: 'warning',
    metafile: false,
});
console.log(`built dist/extension.js${production ? ' (production)' : ''}`);
