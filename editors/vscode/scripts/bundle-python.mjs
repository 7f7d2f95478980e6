// Fills bundled/libs with torchlint (built from this repository) and its
// pure-Python dependencies, the layout of Microsoft's Python-tool extension
// template. The extension puts bundled/libs on PYTHONPATH when
// torchlint.importStrategy is "useBundled".
//
// Dependencies are fetched as `py3-none-any` wheels only (--platform any
// --abi none), so a build machine can never slip a compiled wheel for its own
// interpreter into a .vsix that must work on every OS. libcst, the one compiled
// dependency, is left to the user's environment (see README.md).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const extensionRoot = path.resolve(here, '..');
const repoRoot = path.resolve(extensionRoot, '..', '..');
const libs = path.join(extensionRoot, 'bundled', 'libs');
// For "Install torchlint": torchlint's wheel and its pure-Python dependencies'
// wheels, so installing into the user's interpreter needs no package index
// (which may not have torchlint at all) for anything but libcst.
const wheels = path.join(extensionRoot, 'bundled', 'wheels');
const python = process.env.TORCHLINT_BUILD_PYTHON || (process.platform === 'win32' ? 'python' : 'python3');

function pip(args, command = ['install', '--no-compile', '--no-deps', '--target', libs]) {
    const cmd = [python, '-m', 'pip', '--disable-pip-version-check', ...command, ...args];
    console.log(`$ ${cmd.join(' ')}`);
    const r = spawnSync(cmd[0], cmd.slice(1), { stdio: 'inherit', cwd: extensionRoot });
    if (r.error) {
        throw r.error;
    }
    if (r.status !== 0) {
        process.exit(r.status ?? 1);
    }
}

fs.rmSync(libs, { recursive: true, force: true });
fs.mkdirSync(libs, { recursive: true });
fs.rmSync(wheels, { recursive: true, force: true });
fs.mkdirSync(wheels, { recursive: true });

const pureWheels = [
    '--only-binary=:all:',
    '--platform', 'any',
    '--implementation', 'py',
    '--abi', 'none',
    // The oldest Python torchlint supports, so 3.10-only backports resolve too.
    '--python-version', '3.10',
    '-r', path.join(extensionRoot, 'requirements-bundled.txt'),
];
pip(pureWheels);
pip(pureWheels, ['download', '--no-deps', '--dest', wheels]);
// setuptools builds in the source tree (build/, *.egg-info); build from a copy
// so packaging leaves the repository as it was.
const staging = fs.mkdtempSync(path.join(os.tmpdir(), 'torchlint-src-'));
try {
    for (const name of fs.readdirSync(repoRoot)) {
        if (name === 'pyproject.toml' || /^(README|LICENSE)/i.test(name)) {
            fs.copyFileSync(path.join(repoRoot, name), path.join(staging, name));
        }
    }
    fs.cpSync(path.join(repoRoot, 'torchlint'), path.join(staging, 'torchlint'), {
        recursive: true,
        filter: (src) => !/(__pycache__|\.py[co])$/.test(src),
    });
    pip([staging]);
    pip([staging], ['wheel', '--no-deps', '--wheel-dir', wheels]);
} finally {
    fs.rmSync(staging, { recursive: true, force: true });
}

// Console scripts carry a shebang for the build machine's interpreter: useless
// to anyone else, and the extension runs `python -m torchlint` anyway.
fs.rmSync(path.join(libs, 'bin'), { recursive: true, force: true });

const native = [];
const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, entry.name);
        if (entry.isDirectory()) {
            if (entry.name === '__pycache__') {
                fs.rmSync(p, { recursive: true, force: true });
            } else {
                walk(p);
            }
        } else if (/\.(so|pyd|dylib)$/.test(entry.name)) {
            native.push(path.relative(libs, p));
        }
    }
};
walk(libs);
if (native.length > 0) {
    console.error(`bundled/libs must be pure Python, but contains:\n  ${native.join('\n  ')}`);
    process.exit(1);
}
if (!fs.existsSync(path.join(libs, 'torchlint', '__init__.py'))) {
    console.error('bundled/libs/torchlint is missing after pip install');
    process.exit(1);
}
if (!fs.readdirSync(wheels).some((f) => /^torchlint-.*-py3-none-any\.whl$/.test(f))) {
    console.error('bundled/wheels has no torchlint wheel after pip wheel');
    process.exit(1);
}
console.log(`bundled torchlint and its pure-Python dependencies into ${path.relative(process.cwd(), wheels) || wheels} (wheels)`);
console.log(`bundled torchlint and its pure-Python dependencies into ${path.relative(process.cwd(), libs) || libs}`);
