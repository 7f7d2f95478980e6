// Which Python runs the server. Pure so the resolution order is unit-tested;
// python.ts does the Python-extension calls and passes the result in.
import * as path from 'path';

export type InterpreterSource = 'torchlint.interpreter' | 'python-extension' | 'default';

export interface InterpreterInputs {
    /** `torchlint.interpreter`: executable followed by arguments that go before `-m`. */
    setting: string[];
    /** Executable of the environment the Python extension selected, when that extension is installed and it resolved. */
    pythonExtension?: string;
    trusted: boolean;
    /** File-system paths of the open workspace folders. */
    workspaceFolders: string[];
    platform: NodeJS.Platform;
}

export interface ResolvedInterpreter {
    command: string[];
    source: InterpreterSource;
    /** Why a candidate was passed over, for the log. */
    skipped?: string;
}

export function defaultPython(platform: NodeJS.Platform): string {
    // Windows installs `python.exe` (and the `py` launcher), never `python3.exe`
    // outside the Store alias, which is a stub that opens the Store.
    return platform === 'win32' ? 'python' : 'python3';
}

function pathApi(platform: NodeJS.Platform): path.PlatformPath {
    return platform === 'win32' ? path.win32 : path.posix;
}

export function isInside(file: string, folder: string, platform: NodeJS.Platform): boolean {
    const p = pathApi(platform);
    const caseInsensitive = platform === 'win32' || platform === 'darwin';
    const norm = (s: string) => (caseInsensitive ? p.resolve(s).toLowerCase() : p.resolve(s));
    const rel = p.relative(norm(folder), norm(file));
    return rel === '' || (!rel.startsWith('..') && !p.isAbsolute(rel));
}

/**
 * Order: an explicit `torchlint.interpreter` (it is specific to torchlint, so it
 * wins over the general Python selection), then the Python extension's
 * selected environment, then `python3`.
 *
 * In an untrusted workspace an environment that lives inside the workspace
 * (e.g. a checked-in `.venv`) is skipped: its `python` and `site-packages` are
 * the workspace's own code, and starting them would run that code. The
 * `torchlint.interpreter` value can be taken as-is because VS Code only returns
 * its user-level value there (it is a restricted setting).
 */
export function resolveInterpreter(inputs: InterpreterInputs): ResolvedInterpreter {
    if (inputs.setting.length > 0) {
        return { command: [...inputs.setting], source: 'torchlint.interpreter' };
    }
    let skipped: string | undefined;
    const fromExtension = inputs.pythonExtension?.trim();
    if (fromExtension) {
        const inWorkspace = inputs.workspaceFolders.some((f) => isInside(fromExtension, f, inputs.platform));
        if (inputs.trusted || !inWorkspace) {
            return { command: [fromExtension], source: 'python-extension' };
        }
        skipped = `the selected interpreter ${fromExtension} is inside this untrusted workspace`;
    }
    return { command: [defaultPython(inputs.platform)], source: 'default', skipped };
}
