// How the server process is started and how its environment is checked first.
// Pure (no `vscode` import) so every branch is unit-tested.
import * as path from 'path';
import type { ImportStrategy, TorchlintSettings } from './settings';

/** torchlint's pyproject.toml says requires-python >= 3.10. */
export const MIN_PYTHON: readonly [number, number] = [3, 10];

export interface LaunchInputs {
    settings: TorchlintSettings;
    /** Resolved interpreter command (see interpreter.ts). */
    interpreter: string[];
    extensionPath: string;
    /** First workspace folder, if any. */
    workspaceFolder?: string;
    trusted: boolean;
    env: NodeJS.ProcessEnv;
    platform: NodeJS.Platform;
    exists: (p: string) => boolean;
}

export interface LaunchSpec {
    /** `module`: `<python> -m torchlint server`; `executable`: a `torchlint.path` entry. */
    kind: 'module' | 'executable';
    command: string;
    args: string[];
    env: NodeJS.ProcessEnv;
    cwd: string;
    importStrategy?: ImportStrategy;
}

export type LaunchResult = { ok: true; spec: LaunchSpec } | { ok: false; error: string };

export function bundledDir(extensionPath: string): string {
    return path.join(extensionPath, 'bundled');
}

export function bundledLibsDir(extensionPath: string): string {
    return path.join(extensionPath, 'bundled', 'libs');
}

function pathApi(platform: NodeJS.Platform): path.PlatformPath {
    return platform === 'win32' ? path.win32 : path.posix;
}

function looksLikeBareCommand(p: string, platform: NodeJS.Platform): boolean {
    return !p.includes('/') && !(platform === 'win32' && p.includes('\\'));
}

/**
 * `python -m` puts the working directory first on sys.path, so starting the
 * server inside an untrusted workspace would import a `torchlint` package
 * planted there. Untrusted workspaces therefore get a working directory inside
 * the extension; the server learns the workspace from the LSP rootUri anyway.
 */
export function serverCwd(inputs: Pick<LaunchInputs, 'trusted' | 'workspaceFolder' | 'extensionPath'>): string {
    if (inputs.trusted && inputs.workspaceFolder) {
        return inputs.workspaceFolder;
    }
    return path.join(bundledDir(inputs.extensionPath), 'tool');
}

/**
 * PYTHONPATH (not a sys.path tweak in a launcher) so that processes the server
 * starts with the same interpreter — the runtime checker behind
 * `torchlint.confirm` — import the same bundled torchlint.
 */
export function withBundledLibs(env: NodeJS.ProcessEnv, extensionPath: string, platform: NodeJS.Platform): NodeJS.ProcessEnv {
    const delimiter = platform === 'win32' ? ';' : ':';
    const libs = bundledLibsDir(extensionPath);
    const existing = env.PYTHONPATH;
    return { ...env, PYTHONPATH: existing ? `${libs}${delimiter}${existing}` : libs };
}

export function buildLaunch(inputs: LaunchInputs): LaunchResult {
    const { settings } = inputs;
    const cwd = serverCwd(inputs);
    if (settings.path.length > 0) {
        const found = settings.path.find(
            (p) => looksLikeBareCommand(p, inputs.platform) || inputs.exists(pathApi(inputs.platform).resolve(p)),
        );
        if (!found) {
            return { ok: false, error: `None of the executables in torchlint.path exists: ${settings.path.join(', ')}` };
        }
        return {
            ok: true,
            spec: { kind: 'executable', command: found, args: ['server', ...settings.args], env: { ...inputs.env }, cwd },
        };
    }
    if (inputs.interpreter.length === 0) {
        return { ok: false, error: 'No Python interpreter to start torchlint with.' };
    }
    const [command, ...pre] = inputs.interpreter;
    const env =
        settings.importStrategy === 'useBundled'
            ? withBundledLibs(inputs.env, inputs.extensionPath, inputs.platform)
            : { ...inputs.env };
    return {
        ok: true,
        spec: {
            kind: 'module',
            command,
            args: [...pre, '-m', 'torchlint', 'server', ...settings.args],
            env,
            cwd,
            importStrategy: settings.importStrategy,
        },
    };
}

/** bundled/tool/check_env.py: imports what `torchlint server` needs and reports the first thing missing. */
export function probeScript(extensionPath: string): string {
    return path.join(bundledDir(extensionPath), 'tool', 'check_env.py');
}

/** Same interpreter, interpreter arguments and (via LaunchSpec.env) PYTHONPATH as the server. */
export function probeArgs(spec: LaunchSpec, extensionPath: string): string[] {
    const pre = spec.args.slice(0, spec.args.indexOf('-m'));
    return [...pre, probeScript(extensionPath)];
}

export interface ProbeResult {
    version?: number[];
    executable?: string;
    torchlint?: string | null;
    location?: string | null;
    missing?: string | null;
    error?: string;
}

export function parseProbe(stdout: string): ProbeResult | undefined {
    // Site customisations may print before us; the JSON is the last line.
    const last = stdout.trim().split(/\r?\n/).pop();
    if (!last) {
        return undefined;
    }
    try {
        const parsed = JSON.parse(last);
        return parsed && typeof parsed === 'object' ? (parsed as ProbeResult) : undefined;
    } catch {
        return undefined;
    }
}

/**
 * What to start the server with once the probe has run: the interpreter the probe reports
 * (its `sys.executable`) rather than the command that found it. A `python3` on PATH may be
 * a shell-script shim (pyenv's takes a fifth of a second to pick the real interpreter,
 * every time); the probe ran with the server's working directory and environment, so it
 * names the interpreter the shim picks. Kept as it is: a `torchlint.path` executable, an
 * interpreter command with arguments of its own before `-m` other than Python options
 * (`conda run -n env python`), and a probe that named no absolute path.
 */
export function serverCommand(spec: LaunchSpec, probe: ProbeResult | undefined, platform: NodeJS.Platform): string {
    const executable = probe?.executable;
    if (spec.kind !== 'module' || !executable || !pathApi(platform).isAbsolute(executable)) {
        return spec.command;
    }
    const pre = spec.args.slice(0, spec.args.indexOf('-m'));
    const pythonOptions = pre.every(
        (arg, i) => arg.startsWith('-') || PYTHON_OPTIONS_WITH_VALUE.includes(pre[i - 1] ?? ''),
    );
    return pythonOptions ? executable : spec.command;
}

/** Python's options whose value is the next argument (`-X utf8`, `-W ignore`). */
const PYTHON_OPTIONS_WITH_VALUE = ['-X', '-W', '--check-hash-based-pycs'];

export type ProbePlan =
    | { kind: 'ok' }
    | { kind: 'install'; packages: string[]; message: string }
    | { kind: 'error'; message: string };

/** Import names that differ from the distribution pip installs. */
const DISTRIBUTION_FOR_MODULE: Record<string, string> = { yaml: 'pyyaml' };

export function planFromProbe(probe: ProbeResult | undefined, strategy: ImportStrategy, python: string): ProbePlan {
    if (!probe) {
        return { kind: 'error', message: `Could not run ${python} to check for torchlint.` };
    }
    const [major = 0, minor = 0] = probe.version ?? [];
    if (major < MIN_PYTHON[0] || (major === MIN_PYTHON[0] && minor < MIN_PYTHON[1])) {
        return {
            kind: 'error',
            message: `torchlint needs Python ${MIN_PYTHON.join('.')} or newer, but ${python} is Python ${(probe.version ?? []).join('.') || 'unknown'}. Select another interpreter or set torchlint.interpreter.`,
        };
    }
    if (!probe.error) {
        return { kind: 'ok' };
    }
    const missing = probe.missing ?? undefined;
    if (!missing) {
        return { kind: 'error', message: `torchlint cannot be imported by ${python}: ${probe.error}` };
    }
    if (strategy === 'useBundled') {
        if (missing === 'torchlint' || missing === 'pygls' || missing === 'lsprotocol') {
            return {
                kind: 'error',
                message: `The torchlint copy bundled with this extension is incomplete (${probe.error}). Reinstall the extension or set torchlint.importStrategy to "fromEnvironment".`,
            };
        }
        const dist = DISTRIBUTION_FOR_MODULE[missing] ?? missing;
        return {
            kind: 'install',
            packages: [dist],
            message: `torchlint's bundled copy needs ${dist}, a compiled package that must come from your Python environment, and ${python} does not have it.`,
        };
    }
    if (missing === 'torchlint') {
        return { kind: 'install', packages: ['torchlint'], message: `torchlint is not installed in ${python}.` };
    }
    // torchlint is there but one of its dependencies is not: reinstalling it
    // brings the dependencies back without guessing at distribution names.
    return {
        kind: 'install',
        packages: ['torchlint'],
        message: `torchlint in ${python} is missing its dependency ${missing}.`,
    };
}

export function installArgs(spec: LaunchSpec, packages: string[]): string[] {
    const pre = spec.args.slice(0, spec.args.indexOf('-m'));
    return [...pre, '-m', 'pip', 'install', ...packages];
}

/** bundled/wheels: torchlint's own wheel and its pure-Python dependencies (scripts/bundle-python.mjs). */
export function bundledWheelsDir(extensionPath: string): string {
    return path.join(extensionPath, 'bundled', 'wheels');
}

/** The torchlint wheel among `files` (the names in bundled/wheels), if there is one. */
export function torchlintWheel(files: string[]): string | undefined {
    return files.filter((f) => /^torchlint-[^-]+-py3-none-any\.whl$/.test(f)).sort().pop();
}

export interface InstallAttempt {
    args: string[];
    /** What it does, for the user and the log. */
    description: string;
}

/**
 * How to install: torchlint from the wheel in the .vsix, never from the package
 * index (which may not have torchlint at all). First offline (--no-index, the
 * dependencies from the bundled wheels or already installed); if that fails
 * (typically libcst, a compiled package the .vsix cannot carry, is missing and
 * the machine is online) once more with the index allowed for the dependencies.
 * Packages other than torchlint (libcst for the bundled copy) come from the index.
 */
export function installAttempts(spec: LaunchSpec, packages: string[], wheelsDir: string, wheels: string[]): InstallAttempt[] {
    const wheel = torchlintWheel(wheels);
    if (!wheel || !packages.includes('torchlint')) {
        return [{ args: installArgs(spec, packages), description: `pip install ${packages.join(' ')} (from the package index)` }];
    }
    const others = packages.filter((p) => p !== 'torchlint');
    const target = [path.join(wheelsDir, wheel), ...others];
    const local = ['--find-links', wheelsDir];
    return [
        {
            args: installArgs(spec, ['--no-index', ...local, ...target]),
            description: `pip install ${wheel} bundled with the extension, offline`,
        },
        {
            args: installArgs(spec, [...local, ...target]),
            description: `pip install ${wheel} bundled with the extension, missing dependencies from the package index`,
        },
    ];
}
