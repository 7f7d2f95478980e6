import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import {
    buildLaunch,
    installArgs,
    installAttempts,
    LaunchInputs,
    LaunchSpec,
    parseProbe,
    planFromProbe,
    probeArgs,
    probeScript,
    serverCommand,
    serverCwd,
    torchlintWheel,
} from '../launch';
import { readSettings } from '../settings';

const EXT = '/ext/torchlint-0.1.0';

function inputs(settings: Record<string, unknown> = {}, over: Partial<LaunchInputs> = {}): LaunchInputs {
    return {
        settings: readSettings((k) => settings[k]),
        interpreter: ['/venv/bin/python'],
        extensionPath: EXT,
        workspaceFolder: '/home/u/proj',
        trusted: true,
        env: { PATH: '/usr/bin' },
        platform: 'linux',
        exists: () => false,
        ...over,
    };
}

function spec(over: Partial<LaunchSpec> = {}): LaunchSpec {
    const r = buildLaunch(inputs());
    assert.ok(r.ok);
    return { ...r.spec, ...over };
}

describe('buildLaunch: settings → server command line', () => {
    it('runs `<python> -m torchlint server` from the environment by default', () => {
        const r = buildLaunch(inputs());
        assert.ok(r.ok);
        assert.equal(r.spec.kind, 'module');
        assert.equal(r.spec.command, '/venv/bin/python');
        assert.deepEqual(r.spec.args, ['-m', 'torchlint', 'server']);
        assert.equal(r.spec.env.PYTHONPATH, undefined);
        assert.equal(r.spec.cwd, '/home/u/proj');
    });

    it('puts interpreter arguments before -m and torchlint.args after `server`', () => {
        const r = buildLaunch(inputs({ args: ['--log-file', '/tmp/tl.log'] }, { interpreter: ['py', '-3.11'] }));
        assert.ok(r.ok);
        assert.equal(r.spec.command, 'py');
        assert.deepEqual(r.spec.args, ['-3.11', '-m', 'torchlint', 'server', '--log-file', '/tmp/tl.log']);
    });

    it('useBundled prepends bundled/libs to PYTHONPATH and keeps the user value', () => {
        const r = buildLaunch(inputs({ importStrategy: 'useBundled' }, { env: { PYTHONPATH: '/mine' } }));
        assert.ok(r.ok);
        assert.equal(r.spec.env.PYTHONPATH, `${path.join(EXT, 'bundled', 'libs')}:/mine`);
        assert.equal(r.spec.importStrategy, 'useBundled');
    });

    it('uses ; as the PYTHONPATH separator on Windows', () => {
        const r = buildLaunch(inputs({ importStrategy: 'useBundled' }, { env: { PYTHONPATH: 'C:\\mine' }, platform: 'win32' }));
        assert.ok(r.ok);
        assert.match(r.spec.env.PYTHONPATH ?? '', /bundled.libs;C:\\mine$/);
    });

    it('torchlint.path starts the first existing executable with `server` and ignores the interpreter', () => {
        const r = buildLaunch(
            inputs(
                { path: ['/nope/torchlint', '/opt/tl/bin/torchlint'], args: ['-v'], importStrategy: 'useBundled' },
                { exists: (p) => p === '/opt/tl/bin/torchlint' },
            ),
        );
        assert.ok(r.ok);
        assert.equal(r.spec.kind, 'executable');
        assert.equal(r.spec.command, '/opt/tl/bin/torchlint');
        assert.deepEqual(r.spec.args, ['server', '-v']);
        assert.equal(r.spec.env.PYTHONPATH, undefined);
    });

    it('torchlint.path accepts a bare command name looked up on PATH', () => {
        const r = buildLaunch(inputs({ path: ['torchlint'] }));
        assert.ok(r.ok);
        assert.equal(r.spec.command, 'torchlint');
    });

    it('reports a torchlint.path where nothing exists instead of silently using Python', () => {
        const r = buildLaunch(inputs({ path: ['/nope/torchlint'] }));
        assert.equal(r.ok, false);
        assert.match(!r.ok ? r.error : '', /None of the executables in torchlint.path/);
    });

    it('does not mutate the environment it is given', () => {
        const env = { PYTHONPATH: '/mine' };
        buildLaunch(inputs({ importStrategy: 'useBundled' }, { env }));
        assert.deepEqual(env, { PYTHONPATH: '/mine' });
    });
});

describe('serverCwd', () => {
    it('is the workspace when trusted, and outside it otherwise (python -m imports from the cwd)', () => {
        assert.equal(serverCwd({ trusted: true, workspaceFolder: '/w', extensionPath: EXT }), '/w');
        assert.equal(serverCwd({ trusted: false, workspaceFolder: '/w', extensionPath: EXT }), path.join(EXT, 'bundled', 'tool'));
        assert.equal(serverCwd({ trusted: true, extensionPath: EXT }), path.join(EXT, 'bundled', 'tool'));
    });
});

describe('probe and install commands', () => {
    it('probes with the same interpreter and interpreter arguments', () => {
        const args = probeArgs(spec({ args: ['-X', 'utf8', '-m', 'torchlint', 'server'] }), EXT);
        assert.deepEqual(args, ['-X', 'utf8', path.join(EXT, 'bundled', 'tool', 'check_env.py')]);
    });

    it('starts the server with the interpreter the probe ran, not the command that found it (a shim)', () => {
        const probe = { version: [3, 11, 7], executable: '/home/u/.pyenv/versions/3.11.7/bin/python3.11' };
        const shim = spec({ command: '/home/u/.pyenv/shims/python3' });
        assert.equal(serverCommand(shim, probe, 'linux'), probe.executable);
        // Python options before `-m` stay with it.
        const flags = spec({ command: 'python3', args: ['-X', 'utf8', '-m', 'torchlint', 'server'] });
        assert.equal(serverCommand(flags, probe, 'linux'), probe.executable);
        // A command that runs Python for us, a torchlint executable, a probe without an absolute path: as they are.
        const conda = spec({ command: 'conda', args: ['run', '-n', 'ml', 'python', '-m', 'torchlint', 'server'] });
        assert.equal(serverCommand(conda, probe, 'linux'), 'conda');
        assert.equal(serverCommand(spec({ kind: 'executable', command: '/bin/torchlint', args: ['server'] }), probe, 'linux'), '/bin/torchlint');
        assert.equal(serverCommand(shim, { version: [3, 11, 7], executable: 'python3' }, 'linux'), shim.command);
        assert.equal(serverCommand(shim, { version: [3, 11, 7] }, 'linux'), shim.command);
        assert.equal(serverCommand(shim, undefined, 'linux'), shim.command);
        assert.equal(serverCommand(spec({ command: 'python' }), { executable: 'C:\\Python311\\python.exe' }, 'win32'), 'C:\\Python311\\python.exe');
    });

    it('installs with `python -m pip install`', () => {
        assert.deepEqual(installArgs(spec(), ['torchlint']), ['-m', 'pip', 'install', 'torchlint']);
    });

    it('installs torchlint from the wheel bundled in the .vsix, offline first, never by name from the index', () => {
        const dir = `${EXT}/bundled/wheels`;
        const wheels = ['pygls-2.1.1-py3-none-any.whl', 'torchlint-0.1.0-py3-none-any.whl', 'attrs-26.1.0-py3-none-any.whl'];
        const attempts = installAttempts(spec(), ['torchlint'], dir, wheels);
        assert.deepEqual(
            attempts.map((a) => a.args),
            [
                ['-m', 'pip', 'install', '--no-index', '--find-links', dir, `${dir}/torchlint-0.1.0-py3-none-any.whl`],
                ['-m', 'pip', 'install', '--find-links', dir, `${dir}/torchlint-0.1.0-py3-none-any.whl`],
            ],
        );
        assert.match(attempts[0].description, /offline/);
        assert.ok(attempts.every((a) => !a.args.includes('torchlint')));
        // Without a bundled wheel (a development build), or for libcst alone: the index.
        assert.deepEqual(installAttempts(spec(), ['torchlint'], dir, ['pygls-2.1.1-py3-none-any.whl']).map((a) => a.args), [
            ['-m', 'pip', 'install', 'torchlint'],
        ]);
        assert.deepEqual(installAttempts(spec(), ['libcst'], dir, wheels).map((a) => a.args), [['-m', 'pip', 'install', 'libcst']]);
        assert.equal(torchlintWheel(['torchlint-0.1.0.tar.gz', 'torchlint-0.1.0-py3-none-any.whl']), 'torchlint-0.1.0-py3-none-any.whl');
    });

    describe('bundled/tool/check_env.py under a real Python', () => {
        // out/test/launch.test.js → the extension root
        const script = probeScript(path.resolve(__dirname, '..', '..'));
        let python = 'python3';
        try {
            execFileSync(python, ['-c', 'pass']);
        } catch {
            python = 'python';
        }
        const run = (...modules: string[]) => parseProbe(execFileSync(python, [script, ...modules], { encoding: 'utf8' }));

        it('reports a missing module by its top-level name', () => {
            const probe = run('json', 'torchlint_missing_pkg.sub');
            assert.ok(probe);
            assert.equal(probe.missing, 'torchlint_missing_pkg');
            assert.equal(probe.version?.length, 3);
            assert.equal(planFromProbe(probe, 'fromEnvironment', python).kind, 'install');
        });

        it('reports where the first module was imported from when everything imports', () => {
            const probe = run('json', 'os');
            assert.ok(probe);
            assert.equal(probe.error, undefined);
            assert.match(probe.location ?? '', /json/);
            assert.deepEqual(planFromProbe(probe, 'fromEnvironment', python), { kind: 'ok' });
        });
    });
});

describe('parseProbe', () => {
    it('reads the last line, so sitecustomize chatter before it is harmless', () => {
        assert.deepEqual(parseProbe('hello from sitecustomize\n{"version": [3, 11, 7], "torchlint": "0.1.0"}\n'), {
            version: [3, 11, 7],
            torchlint: '0.1.0',
        });
    });

    it('returns undefined for no or broken output', () => {
        assert.equal(parseProbe(''), undefined);
        assert.equal(parseProbe('Traceback (most recent call last):'), undefined);
        assert.equal(parseProbe('42'), undefined);
    });
});

describe('planFromProbe', () => {
    const ok = { version: [3, 11, 7], torchlint: '0.1.0', location: '/venv/x/torchlint/__init__.py' };

    it('is ok when everything imports', () => {
        assert.deepEqual(planFromProbe(ok, 'fromEnvironment', 'python3'), { kind: 'ok' });
    });

    it('offers `pip install torchlint` when torchlint is missing', () => {
        const plan = planFromProbe(
            { version: [3, 11, 7], missing: 'torchlint', error: "ModuleNotFoundError: No module named 'torchlint'" },
            'fromEnvironment',
            '/venv/bin/python',
        );
        assert.equal(plan.kind, 'install');
        assert.deepEqual(plan.kind === 'install' && plan.packages, ['torchlint']);
        assert.match(plan.kind === 'install' ? plan.message : '', /not installed in \/venv\/bin\/python/);
    });

    it('reinstalls torchlint when one of its dependencies is missing', () => {
        const plan = planFromProbe({ version: [3, 11, 0], missing: 'libcst', error: 'x' }, 'fromEnvironment', 'python3');
        assert.deepEqual(plan.kind === 'install' && plan.packages, ['torchlint']);
    });

    it('with the bundled copy, asks for libcst (the compiled dependency) from the environment', () => {
        const plan = planFromProbe({ version: [3, 12, 1], missing: 'libcst', error: 'x' }, 'useBundled', 'python3');
        assert.equal(plan.kind, 'install');
        assert.deepEqual(plan.kind === 'install' && plan.packages, ['libcst']);
        assert.match(plan.kind === 'install' ? plan.message : '', /compiled/);
    });

    it('maps import names to distribution names (yaml → pyyaml)', () => {
        const plan = planFromProbe({ version: [3, 12, 1], missing: 'yaml', error: 'x' }, 'useBundled', 'python3');
        assert.deepEqual(plan.kind === 'install' && plan.packages, ['pyyaml']);
    });

    it('calls a bundle without torchlint or pygls broken rather than installing into the environment', () => {
        for (const missing of ['torchlint', 'pygls', 'lsprotocol']) {
            const plan = planFromProbe({ version: [3, 12, 1], missing, error: 'x' }, 'useBundled', 'python3');
            assert.equal(plan.kind, 'error', missing);
        }
    });

    it('rejects Python older than 3.10', () => {
        const plan = planFromProbe({ version: [3, 8, 10], missing: 'torchlint', error: 'x' }, 'fromEnvironment', 'python3');
        assert.equal(plan.kind, 'error');
        assert.match(plan.kind === 'error' ? plan.message : '', /3\.10 or newer.*3\.8\.10/);
    });

    it('reports an import error that is not a missing module verbatim', () => {
        const plan = planFromProbe({ version: [3, 11, 7], error: 'SyntaxError: bad' }, 'fromEnvironment', 'python3');
        assert.deepEqual(plan, { kind: 'error', message: 'torchlint cannot be imported by python3: SyntaxError: bad' });
    });

    it('reports an interpreter that could not run', () => {
        assert.equal(planFromProbe(undefined, 'fromEnvironment', 'python3').kind, 'error');
    });
});
