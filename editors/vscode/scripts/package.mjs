// One command from a clean checkout to a .vsix:
//   npm --prefix editors/vscode ci && npm --prefix editors/vscode run package
// Bundles torchlint into bundled/libs, type-checks, bundles the extension with
// esbuild, packs with vsce (no node_modules in the .vsix) and prints the size.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const vsix = path.join(root, `${pkg.name}-${pkg.version}.vsix`);
const bin = (name) => path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? `${name}.cmd` : name);

function run(cmd, args) {
    const shown = cmd === process.execPath ? 'node' : path.relative(root, cmd);
    console.log(`\n$ ${[shown, ...args].join(' ')}`);
    const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
    if (r.error) {
        throw r.error;
    }
    if (r.status !== 0) {
        process.exit(r.status ?? 1);
    }
}

run(process.execPath, ['scripts/bundle-python.mjs']);
run(bin('tsc'), ['-p', '.', '--noEmit']);
run(process.execPath, ['scripts/build.mjs', '--production']);
fs.rmSync(vsix, { force: true });
run(bin('vsce'), ['package', '--no-dependencies', '--allow-missing-repository', '--out', vsix]);

const bytes = fs.statSync(vsix).size;
console.log(`\n${vsix}: ${(bytes / 1024).toFixed(1)} KiB (${bytes} bytes)`);
