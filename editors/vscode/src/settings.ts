// Settings handling kept free of the `vscode` module so it can be unit-tested
// with plain Node; extension.ts feeds it `WorkspaceConfiguration.get`.

export type ImportStrategy = 'fromEnvironment' | 'useBundled';
export type NotificationLevel = 'off' | 'onError' | 'onWarning' | 'always';
export type Severity = 'error' | 'warning' | 'info';
/** The server's `diagnosticMode`: `auto` pushes and also answers pulls. */
export type DiagnosticMode = 'pull' | 'push' | 'auto';
/** How the editor's select/ignore combine with the project's [tool.torchlint] (as ruff's extension). */
export type ConfigurationPreference = 'editorFirst' | 'filesystemFirst' | 'editorOnly';

export interface TorchlintSettings {
    enable: boolean;
    select: string[];
    ignore: string[];
    args: string[];
    path: string[];
    interpreter: string[];
    importStrategy: ImportStrategy;
    runtimeEnabled: boolean;
    showNotifications: NotificationLevel;
    diagnosticMode: DiagnosticMode;
    configurationPreference: ConfigurationPreference;
    /** Also lint the Python blocks of Markdown and Quarto files (notebook cells are always linted). */
    lintMarkdown: boolean;
}

/** What the server accepts as initializationOptions and, under the `torchlint`
 * section, in workspace/didChangeConfiguration and workspace/configuration. */
export interface ServerSettings {
    /** null = "no opinion": the project's [tool.torchlint] selection (or the
     * defaults) applies. An empty list would select no rule at all. */
    select: string[] | null;
    ignore: string[];
    runtime: { enabled: boolean };
    logLevel: ServerLogLevel;
    configurationPreference: ConfigurationPreference;
}

export type ServerLogLevel = 'debug' | 'info' | 'warning' | 'error';

/** initializationOptions: the settings, plus what the server reads only at start-up. */
export interface InitializationOptions extends ServerSettings {
    diagnosticMode: DiagnosticMode;
}

export const SECTION = 'torchlint';

/** Reads a setting by its key below the `torchlint` section (e.g. `runtime.enabled`). */
export type SettingGetter = (key: string) => unknown;

const IMPORT_STRATEGIES: readonly ImportStrategy[] = ['fromEnvironment', 'useBundled'];
const NOTIFICATION_LEVELS: readonly NotificationLevel[] = ['off', 'onError', 'onWarning', 'always'];
const DIAGNOSTIC_MODES: readonly DiagnosticMode[] = ['pull', 'push', 'auto'];
const PREFERENCES: readonly ConfigurationPreference[] = ['editorFirst', 'filesystemFirst', 'editorOnly'];

function stringList(value: unknown): string[] {
    if (typeof value === 'string') {
        // A hand-edited settings.json often has "python3" where a list is expected;
        // accepting it beats silently ignoring the user's interpreter.
        return value.trim() ? [value.trim()] : [];
    }
    if (!Array.isArray(value)) {
        return [];
    }
    return value.filter((v): v is string => typeof v === 'string').map((v) => v.trim()).filter((v) => v.length > 0);
}

function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T {
    return typeof value === 'string' && (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}

export function readSettings(get: SettingGetter): TorchlintSettings {
    return {
        enable: get('enable') !== false,
        select: stringList(get('select')),
        ignore: stringList(get('ignore')),
        args: stringList(get('args')),
        path: stringList(get('path')),
        interpreter: stringList(get('interpreter')),
        importStrategy: oneOf(get('importStrategy'), IMPORT_STRATEGIES, 'fromEnvironment'),
        runtimeEnabled: get('runtime.enabled') === true,
        showNotifications: oneOf(get('showNotifications'), NOTIFICATION_LEVELS, 'onError'),
        diagnosticMode: oneOf(get('diagnosticMode'), DIAGNOSTIC_MODES, 'pull'),
        configurationPreference: oneOf(get('configurationPreference'), PREFERENCES, 'editorFirst'),
        lintMarkdown: get('lintMarkdown') === true,
    };
}

/** The documents the client sends to the server: Python files, the Python cells of
 * Jupyter notebooks (synced as notebooks, LSP 3.17), and Markdown/Quarto when opted in. */
export function documentSelector(settings: Pick<TorchlintSettings, 'lintMarkdown'>): Array<{ scheme: string; language: string }> {
    const selector: Array<{ scheme: string; language: string }> = [
        { scheme: 'file', language: 'python' },
        { scheme: 'untitled', language: 'python' },
        { scheme: 'vscode-notebook-cell', language: 'python' },
    ];
    if (settings.lintMarkdown) {
        selector.push({ scheme: 'file', language: 'markdown' }, { scheme: 'file', language: 'quarto' });
    }
    return selector;
}

/**
 * Documents whose findings "Confirm findings … by running" can run from the palette: those the
 * server lints (see documentSelector). A notebook cell runs the notebook's code cells as one
 * program, a Markdown/Quarto file its Python blocks, as `torchlint check --confirm` does.
 */
export function confirmableDocument(
    doc: { languageId: string; scheme: string },
    settings: Pick<TorchlintSettings, 'lintMarkdown'>,
): boolean {
    return documentSelector(settings).some((s) => s.scheme === doc.scheme && s.language === doc.languageId);
}

/**
 * Running a file executes the workspace's code, so it is only allowed when the
 * user opted in AND trusts the workspace. VS Code already ignores workspace
 * values of restricted settings in untrusted workspaces, but a user-level
 * `true` would still get through; this is the check that closes that.
 */
export function effectiveRuntimeEnabled(settings: TorchlintSettings, trusted: boolean): boolean {
    return trusted && settings.runtimeEnabled;
}

export function toServerSettings(
    settings: TorchlintSettings,
    opts: { trusted: boolean; logLevel: ServerLogLevel },
): ServerSettings {
    return {
        select: settings.select.length > 0 ? [...settings.select] : null,
        ignore: [...settings.ignore],
        runtime: { enabled: effectiveRuntimeEnabled(settings, opts.trusted) },
        logLevel: opts.logLevel,
        configurationPreference: settings.configurationPreference,
    };
}

/**
 * The server pushes diagnostics to every client and also answers pulls unless
 * told otherwise; vscode-languageclient pulls, and keeps pulled diagnostics in a
 * collection of their own, so with both every finding would be listed twice.
 * Hence `pull` unless the user chose another `torchlint.diagnosticMode`.
 */
export function toInitializationOptions(
    settings: TorchlintSettings,
    opts: { trusted: boolean; logLevel: ServerLogLevel },
): InitializationOptions {
    return { ...toServerSettings(settings, opts), diagnosticMode: settings.diagnosticMode };
}

/**
 * Maps VS Code's LogLevel (Off=0, Trace=1, Debug=2, Info=3, Warning=4, Error=5)
 * of the torchlint output channel to the server's logLevel, so "Set Log Level…"
 * on the channel also makes the server chattier or quieter.
 */
export function serverLogLevel(vscodeLogLevel: number | undefined): ServerLogLevel {
    switch (vscodeLogLevel) {
        case 1:
        case 2:
            return 'debug';
        case 4:
            return 'warning';
        case 0:
        case 5:
            return 'error';
        default:
            return 'info';
    }
}

/** Keys whose change the running server picks up from a didChangeConfiguration.
 * (`trace.server` is handled by vscode-languageclient itself and
 * `showNotifications` is read whenever a pop-up is due.) */
const LIVE_KEYS = ['select', 'ignore', 'runtime', 'configurationPreference'];
/** Keys that change how the server process is started (or what it reads only at start-up). */
const RESTART_KEYS = ['enable', 'args', 'path', 'interpreter', 'importStrategy', 'diagnosticMode', 'lintMarkdown'];

export type ConfigChange = 'none' | 'live' | 'restart';

export function classifyConfigChange(affects: (fullKey: string) => boolean): ConfigChange {
    if (RESTART_KEYS.some((k) => affects(`${SECTION}.${k}`))) {
        return 'restart';
    }
    if (LIVE_KEYS.some((k) => affects(`${SECTION}.${k}`))) {
        return 'live';
    }
    return 'none';
}

export function shouldNotify(level: NotificationLevel, severity: Severity): boolean {
    switch (level) {
        case 'off':
            return false;
        case 'onError':
            return severity === 'error';
        case 'onWarning':
            return severity !== 'info';
        case 'always':
            return true;
    }
}
