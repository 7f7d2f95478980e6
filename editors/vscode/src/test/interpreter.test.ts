import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultPython, isInside, resolveInterpreter } from '../interpreter';

const base = { setting: [], trusted: true, workspaceFolders: ['/home/u/proj'], platform: 'linux' as const };

describe('resolveInterpreter order', () => {
    it('1. torchlint.interpreter wins over the Python extension', () => {
        const r = resolveInterpreter({ ...base, setting: ['/opt/py/bin/python', '-X', 'dev'], pythonExtension: '/env/bin/python' });
        assert.deepEqual(r, { command: ['/opt/py/bin/python', '-X', 'dev'], source: 'torchlint.interpreter' });
    });

    it('2. then the environment selected in the Python extension', () => {
        const r = resolveInterpreter({ ...base, pythonExtension: '/home/u/proj/.venv/bin/python' });
        assert.deepEqual(r, { command: ['/home/u/proj/.venv/bin/python'], source: 'python-extension' });
    });

    it('3. then python3 when the Python extension is absent or has no usable selection', () => {
        assert.deepEqual(resolveInterpreter({ ...base }), { command: ['python3'], source: 'default', skipped: undefined });
        assert.deepEqual(resolveInterpreter({ ...base, pythonExtension: '  ' }).command, ['python3']);
    });

    it('uses python on Windows, where python3.exe is usually the Store stub', () => {
        assert.equal(defaultPython('win32'), 'python');
        assert.deepEqual(resolveInterpreter({ ...base, platform: 'win32' }).command, ['python']);
    });
});

describe('resolveInterpreter in an untrusted workspace', () => {
    it('skips an environment inside the workspace, since starting it runs workspace code', () => {
        const r = resolveInterpreter({ ...base, trusted: false, pythonExtension: '/home/u/proj/.venv/bin/python' });
        assert.equal(r.source, 'default');
        assert.deepEqual(r.command, ['python3']);
        assert.match(r.skipped ?? '', /untrusted/);
    });

    it('keeps an environment outside the workspace', () => {
        const r = resolveInterpreter({ ...base, trusted: false, pythonExtension: '/home/u/.pyenv/versions/3.11/bin/python' });
        assert.equal(r.source, 'python-extension');
    });

    it('keeps torchlint.interpreter (VS Code only hands out its user-level value there)', () => {
        const r = resolveInterpreter({ ...base, trusted: false, setting: ['/usr/bin/python3.11'] });
        assert.equal(r.source, 'torchlint.interpreter');
    });
});

describe('isInside', () => {
    it('compares whole path segments', () => {
        assert.equal(isInside('/home/u/proj/.venv/bin/python', '/home/u/proj', 'linux'), true);
        assert.equal(isInside('/home/u/proj', '/home/u/proj', 'linux'), true);
        assert.equal(isInside('/home/u/project2/bin/python', '/home/u/proj', 'linux'), false);
        assert.equal(isInside('/home/u/proj/../other/python', '/home/u/proj', 'linux'), false);
    });

    it('is case-insensitive on Windows and macOS only', () => {
        assert.equal(isInside('C:\\Users\\U\\Proj\\.venv\\Scripts\\python.exe', 'c:\\users\\u\\proj', 'win32'), true);
        assert.equal(isInside('D:\\envs\\python.exe', 'c:\\users\\u\\proj', 'win32'), false);
        assert.equal(isInside('/Users/U/Proj/.venv/bin/python', '/Users/u/proj', 'darwin'), true);
        assert.equal(isInside('/home/U/Proj/.venv/bin/python', '/home/u/proj', 'linux'), false);
    });
});
