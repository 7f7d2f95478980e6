import { execFile, spawn } from 'child_process';
import * as fs from 'fs';
import * as vscode from 'vscode';
import {
    ConfigurationParams,
    DidChangeConfigurationNotification,
    LanguageClientOptions,
    RevealOutputChannelOn,
    ServerOptions,
    State,
    TransportKind,
} from 'vscode-languageclient/node';
import { TorchlintClient } from './client';
import { resolveInterpreter, ResolvedInterpreter } from './interpreter';
import {
    buildLaunch,
    bundledLibsDir,
    bundledWheelsDir,
    installAttempts,
    LaunchSpec,
    parseProbe,
    planFromProbe,
    ProbePlan,
    ProbeResult,
    probeArgs,
    serverCommand,
} from './launch';
import { PythonEnvironments } from './python';
import {
    classifyConfigChange,
    confirmableDocument,
    effectiveRuntimeEnabled,
    readSettings,
    documentSelector,
    SECTION,
    ServerSettings,
    serverLogLevel,
    Severity,
    shouldNotify,
    toInitializationOptions,
    toServerSettings,
    TorchlintSettings,
} from './settings';
import { ServerState, statusPresentation } from './status';

const FIX_ALL_KIND = vscode.CodeActionKind.SourceFixAll.append('torchlint');
const PROBE_TIMEOUT_MS = 60_000;

export interface LaunchInfo {
    command: string;
    args: string[];
    /** Where the interpreter came from (see interpreter.ts); absent for torchlint.path. */
    interpreterSource?: string;
    importStrategy?: string;
    /** Where the environment check imported torchlint from. */
    torchlintLocation?: string;
}

/** What activate() returns: lets other extensions (and the e2e driver) see the server's state. */
export interface TorchlintApi {
    readonly state: ServerState;
    readonly onDidChangeState: vscode.Event<ServerState>;
    /** How the current server was started, once it was. */
    readonly launch: LaunchInfo | undefined;
    /** Resolves once the server has left the `starting` state. */
    whenSettled(): Promise<ServerState>;
}

class Controller implements vscode.Disposable {
    private client: TorchlintClient | undefined;
    private state: ServerState = 'stopped';
    private stateDetail: string | undefined;
    private launchInfo: TorchlintApi['launch'];
    private stopping = false;
    /** Start/stop requests run one after another so a burst of setting changes cannot start two servers. */
    private queue: Promise<void> = Promise.resolve();
    private readonly stateChanged = new vscode.EventEmitter<ServerState>();
    private readonly status: vscode.StatusBarItem;
    private readonly python: PythonEnvironments;
    private readonly disposables: vscode.Disposable[] = [];

    constructor(
        private readonly context: vscode.ExtensionContext,
        private readonly log: vscode.LogOutputChannel,
    ) {
        this.status = vscode.window.createStatusBarItem('torchlint.status', vscode.StatusBarAlignment.Right, 100);
        this.status.name = 'torchlint';
        this.status.command = 'torchlint.showLogs';
        this.python = new PythonEnvironments(log);
        this.disposables.push(this.status, this.python, this.stateChanged);
        this.render();
        this.status.show();
    }

    createApi(): TorchlintApi {
        const self = this;
        return {
            get state() {
                return self.state;
            },
            get launch() {
                return self.launchInfo;
            },
            onDidChangeState: this.stateChanged.event,
            whenSettled: () => this.whenSettled(),
        };
    }

    registerListeners(): void {
        this.disposables.push(
            vscode.workspace.onDidChangeConfiguration((e) => {
                const change = classifyConfigChange((key) => e.affectsConfiguration(key));
                if (change === 'restart') {
                    this.log.info('Settings that affect how the server starts changed; restarting.');
                    void this.restart();
                } else if (change === 'live') {
                    this.pushSettings();
                }
            }),
            vscode.workspace.onDidGrantWorkspaceTrust(() => {
                // Trust changes the working directory, which interpreters are
                // acceptable and whether running code is allowed: start afresh.
                this.log.info('Workspace trusted; restarting the server.');
                void this.restart();
            }),
            this.log.onDidChangeLogLevel(() => this.pushSettings()),
            this.python.onDidChange(() => {
                const s = this.settings();
                if (s.interpreter.length === 0 && s.path.length === 0) {
                    this.log.info('Selected Python environment changed; restarting.');
                    void this.restart();
                }
            }),
        );
    }

    settings(): TorchlintSettings {
        const config = vscode.workspace.getConfiguration(SECTION);
        return readSettings((key) => config.get(key));
    }

    serverSettings(): ServerSettings {
        return toServerSettings(this.settings(), {
            trusted: vscode.workspace.isTrusted,
            logLevel: serverLogLevel(this.log.logLevel),
        });
    }

    notify(severity: Severity, message: string, ...items: string[]): Thenable<string | undefined> {
        const log = severity === 'error' ? this.log.error : severity === 'warning' ? this.log.warn : this.log.info;
        log.call(this.log, message);
        if (!shouldNotify(this.settings().showNotifications, severity)) {
            return Promise.resolve(undefined);
        }
        const show =
            severity === 'error'
                ? vscode.window.showErrorMessage
                : severity === 'warning'
                  ? vscode.window.showWarningMessage
                  : vscode.window.showInformationMessage;
        return show(`torchlint: ${message}`, ...items);
    }

    private setState(state: ServerState, detail?: string): void {
        this.state = state;
        this.stateDetail = detail;
        this.render();
        this.stateChanged.fire(state);
    }

    private render(): void {
        const p = statusPresentation(this.state, this.stateDetail);
        this.status.text = p.text;
        this.status.tooltip = p.tooltip;
        this.status.backgroundColor = p.background ? new vscode.ThemeColor(p.background) : undefined;
    }

    whenSettled(): Promise<ServerState> {
        if (this.state !== 'starting') {
            return this.queue.then(() => this.state);
        }
        return new Promise((resolve) => {
            const sub = this.stateChanged.event((s) => {
                if (s !== 'starting') {
                    sub.dispose();
                    resolve(s);
                }
            });
        });
    }

    private enqueue(task: () => Promise<void>): Promise<void> {
        this.queue = this.queue.then(task, task).catch((err) => {
            this.log.error(`Unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
            this.setState('error', String(err));
        });
        return this.queue;
    }

    start(): Promise<void> {
        return this.enqueue(() => this.doStart());
    }

    restart(): Promise<void> {
        return this.enqueue(async () => {
            await this.doStop();
            await this.doStart();
        });
    }

    stop(): Promise<void> {
        return this.enqueue(() => this.doStop());
    }

    private async resolveInterpreter(): Promise<ResolvedInterpreter> {
        const folders = vscode.workspace.workspaceFolders ?? [];
        const settings = this.settings();
        const fromExtension =
            settings.interpreter.length === 0 ? await this.python.selectedExecutable(folders[0]?.uri) : undefined;
        return resolveInterpreter({
            setting: settings.interpreter,
            pythonExtension: fromExtension,
            trusted: vscode.workspace.isTrusted,
            workspaceFolders: folders.map((f) => f.uri.fsPath),
            platform: process.platform,
        });
    }

    private async doStart(): Promise<void> {
        const settings = this.settings();
        this.launchInfo = undefined;
        if (!settings.enable) {
            this.setState('disabled');
            return;
        }
        this.setState('starting');
        const trusted = vscode.workspace.isTrusted;
        const interpreter = await this.resolveInterpreter();
        if (interpreter.skipped) {
            this.log.warn(`Not using ${interpreter.skipped}.`);
        }
        const launched = buildLaunch({
            settings,
            interpreter: interpreter.command,
            extensionPath: this.context.extensionPath,
            workspaceFolder: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
            trusted,
            env: process.env,
            platform: process.platform,
            exists: (p) => fs.existsSync(p),
        });
        if (!launched.ok) {
            this.setState('error', launched.error);
            void this.notify('error', launched.error, 'Show Logs').then((pick) => pick && this.log.show());
            return;
        }
        let spec = launched.spec;
        let torchlintLocation: string | undefined;
        if (spec.kind === 'module') {
            this.log.info(`Python interpreter: ${interpreter.command.join(' ')} (from ${interpreter.source})`);
            if (spec.importStrategy === 'useBundled' && !fs.existsSync(bundledLibsDir(this.context.extensionPath))) {
                const message =
                    'This build of the extension has no bundled torchlint (bundled/libs is missing). Set torchlint.importStrategy to "fromEnvironment".';
                this.setState('error', message);
                void this.notify('error', message);
                return;
            }
            const { plan, probe } = await this.probe(spec);
            torchlintLocation = probe?.location ?? undefined;
            if (plan.kind !== 'ok') {
                this.setState('error', plan.message);
                void this.offerFix(plan, spec, settings);
                return;
            }
            const command = serverCommand(spec, probe, process.platform);
            if (command !== spec.command) {
                this.log.info(`Starting the server with ${command} (what ${spec.command} runs)`);
                spec = { ...spec, command };
            }
        }
        this.launchInfo = {
            command: spec.command,
            args: spec.args,
            interpreterSource: spec.kind === 'module' ? interpreter.source : undefined,
            importStrategy: spec.importStrategy,
            torchlintLocation,
        };
        await this.startClient(spec);
    }

    private probe(spec: LaunchSpec): Promise<{ plan: ProbePlan; probe?: ProbeResult }> {
        const args = probeArgs(spec, this.context.extensionPath);
        return new Promise((resolve) => {
            execFile(
                spec.command,
                args,
                { env: spec.env, cwd: spec.cwd, timeout: PROBE_TIMEOUT_MS, windowsHide: true },
                (err, stdout, stderr) => {
                    if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
                        resolve({
                            plan: {
                                kind: 'error',
                                message: `Python interpreter "${spec.command}" was not found. Select an interpreter with the Python extension or set torchlint.interpreter.`,
                            },
                        });
                        return;
                    }
                    if (stderr.trim()) {
                        this.log.debug(`probe stderr: ${stderr.trim()}`);
                    }
                    const probe = parseProbe(stdout);
                    if (probe) {
                        this.log.info(
                            `Probe: Python ${probe.version?.join('.')} at ${probe.executable}; torchlint ${probe.location ?? 'not importable'}`,
                        );
                    } else if (err) {
                        this.log.error(`Probe failed: ${err.message}\n${stderr}`);
                    }
                    resolve({ plan: planFromProbe(probe, spec.importStrategy ?? 'fromEnvironment', spec.command), probe });
                },
            );
        });
    }

    /** The last failed start that installing would fix (for the torchlint.install command). */
    private pendingInstall: { spec: LaunchSpec; packages: string[] } | undefined;

    /** `torchlint.install`: install into the interpreter the server would run with. */
    async installCommand(options?: { confirmed?: boolean }): Promise<boolean> {
        const pending = this.pendingInstall;
        if (!pending) {
            void vscode.window.showInformationMessage(
                this.state === 'running'
                    ? `torchlint: already installed and running (${this.launchDetail() ?? ''}).`
                    : 'torchlint: nothing to install (see the logs for why the server is not running).',
            );
            return false;
        }
        return this.install(pending.spec, pending.packages, options?.confirmed === true);
    }

    private async offerFix(plan: ProbePlan, spec: LaunchSpec, settings: TorchlintSettings): Promise<void> {
        if (plan.kind === 'ok') {
            return;
        }
        if (plan.kind === 'error') {
            const pick = await this.notify('error', plan.message, 'Show Logs');
            if (pick) {
                this.log.show();
            }
            return;
        }
        this.pendingInstall = { spec, packages: plan.packages };
        const install = `Install ${plan.packages.join(' ')}`;
        const useBundled = 'Use Bundled torchlint';
        const items = [install];
        if (settings.importStrategy === 'fromEnvironment' && fs.existsSync(bundledLibsDir(this.context.extensionPath))) {
            items.push(useBundled);
        }
        items.push('Show Logs');
        const pick = await this.notify('error', plan.message, ...items);
        if (pick === install) {
            await this.install(spec, plan.packages);
        } else if (pick === useBundled) {
            await vscode.workspace
                .getConfiguration(SECTION)
                .update('importStrategy', 'useBundled', vscode.ConfigurationTarget.Global);
        } else if (pick === 'Show Logs') {
            this.log.show();
        }
    }

    private async install(spec: LaunchSpec, packages: string[], confirmed = false): Promise<boolean> {
        const dir = bundledWheelsDir(this.context.extensionPath);
        const wheels = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
        const attempts = installAttempts(spec, packages, dir, wheels);
        // Say which interpreter and what will happen before touching the user's environment.
        const detail =
            `Interpreter: ${spec.command}\n` +
            `What happens: ${attempts[0].description}` +
            (attempts.length > 1 ? `; if that fails, ${attempts[1].description}` : '') +
            '.\nThe server starts once it is installed.';
        this.log.info(`Install into ${spec.command}: ${detail.replace(/\n/g, ' ')}`);
        if (!confirmed) {
            const pick = await vscode.window.showInformationMessage(
                `torchlint: install ${packages.join(' ')} into ${spec.command}?`,
                { modal: true, detail },
                'Install',
            );
            if (pick !== 'Install') {
                return false;
            }
        }
        let code: number | null = null;
        for (const attempt of attempts) {
            this.log.info(`Running: ${spec.command} ${attempt.args.join(' ')}`);
            code = await this.runPip(spec, attempt, packages);
            if (code === 0) {
                break;
            }
            this.log.warn(`${attempt.description}: failed (exit ${code})`);
        }
        if (code === 0) {
            this.log.info(`Installed ${packages.join(' ')} into ${spec.command}.`);
            this.pendingInstall = undefined;
            await this.restart();
            return true;
        }
        const pick = await this.notify('error', `Installing ${packages.join(' ')} into ${spec.command} failed (see the logs).`, 'Show Logs');
        if (pick) {
            this.log.show();
        }
        return false;
    }

    private runPip(spec: LaunchSpec, attempt: { args: string[]; description: string }, packages: string[]): Thenable<number | null> {
        return vscode.window.withProgress(
            { location: vscode.ProgressLocation.Notification, title: `torchlint: installing ${packages.join(' ')} (${attempt.description})…` },
            () =>
                new Promise<number | null>((resolve) => {
                    // The user's own environment, without the bundled PYTHONPATH,
                    // so pip sees (and fills) exactly what that environment lacks.
                    const child = spawn(spec.command, attempt.args, { env: process.env, cwd: spec.cwd, windowsHide: true });
                    child.stdout.on('data', (d: Buffer) => this.log.info(d.toString().trimEnd()));
                    child.stderr.on('data', (d: Buffer) => this.log.warn(d.toString().trimEnd()));
                    child.on('error', (err) => {
                        this.log.error(`pip failed to start: ${err.message}`);
                        resolve(null);
                    });
                    child.on('close', resolve);
                }),
        );
    }

    private async startClient(spec: LaunchSpec): Promise<void> {
        this.log.info(`Starting: ${spec.command} ${spec.args.join(' ')} (cwd ${spec.cwd})`);
        const serverOptions: ServerOptions = {
            command: spec.command,
            args: spec.args,
            transport: TransportKind.stdio,
            options: { env: spec.env, cwd: spec.cwd },
        };
        const clientOptions: LanguageClientOptions = {
            documentSelector: documentSelector(this.settings()),
            diagnosticCollectionName: SECTION,
            outputChannel: this.log,
            traceOutputChannel: this.log,
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            initializationOptions: () =>
                toInitializationOptions(this.settings(), {
                    trusted: vscode.workspace.isTrusted,
                    logLevel: serverLogLevel(this.log.logLevel),
                }),
            middleware: {
                workspace: {
                    // Answer pulls of the `torchlint` section with the same gated
                    // values as initializationOptions, never the raw settings.
                    configuration: async (params: ConfigurationParams, token, next) => {
                        const raw = await next(params, token);
                        if (!Array.isArray(raw)) {
                            return raw;
                        }
                        return params.items.map((item, i) =>
                            item.section === SECTION ? this.serverSettings() : raw[i],
                        );
                    },
                },
            },
            initializationFailedHandler: (error) => {
                this.log.error(`Server initialization failed: ${String(error)}`);
                return false;
            },
        };
        const client = new TorchlintClient(SECTION, 'torchlint', serverOptions, clientOptions);
        this.client = client;
        this.stopping = false;
        client.onDidChangeState((e) => {
            if (this.client !== client) {
                return;
            }
            if (e.newState === State.Running) {
                this.setState('running', this.launchDetail());
            } else if (e.newState === State.Starting) {
                this.setState('starting', this.launchDetail());
            } else if (e.newState === State.Stopped) {
                if (this.stopping) {
                    this.setState('stopped');
                } else {
                    this.setState('error', 'The server stopped unexpectedly; see the logs.');
                }
            }
        });
        try {
            await client.start();
        } catch (err) {
            const message = `The server failed to start: ${err instanceof Error ? err.message : String(err)}`;
            this.setState('error', message);
            void this.notify('error', message, 'Show Logs').then((pick) => pick && this.log.show());
        }
    }

    private launchDetail(): string | undefined {
        return this.launchInfo ? `${this.launchInfo.command} ${this.launchInfo.args.join(' ')}` : undefined;
    }

    private async doStop(): Promise<void> {
        const client = this.client;
        if (!client) {
            return;
        }
        this.stopping = true;
        try {
            // dispose() also stops a running (or still starting) server.
            await client.dispose();
        } catch (err) {
            this.log.warn(`Stopping the server: ${String(err)}`);
        } finally {
            this.client = undefined;
            this.setState('stopped');
        }
    }

    private pushSettings(): void {
        const client = this.client;
        if (!client?.isRunning()) {
            return;
        }
        void client.sendNotification(DidChangeConfigurationNotification.type, {
            settings: { [SECTION]: this.serverSettings() },
        });
    }

    private targetUri(arg: unknown): vscode.Uri | undefined {
        if (arg instanceof vscode.Uri) {
            return arg;
        }
        if (typeof arg === 'string' && arg) {
            return vscode.Uri.parse(arg);
        }
        const doc = vscode.window.activeTextEditor?.document;
        return doc?.languageId === 'python' ? doc.uri : undefined;
    }

    /** The palette's target for "Confirm by running": the argument, else the active editor's
     * document when torchlint lints it (a Python file, a notebook cell, Markdown when opted in). */
    private confirmTargetUri(arg: unknown): vscode.Uri | undefined {
        if (arg instanceof vscode.Uri || (typeof arg === 'string' && arg)) {
            return this.targetUri(arg);
        }
        const doc = vscode.window.activeTextEditor?.document;
        if (doc && confirmableDocument({ languageId: doc.languageId, scheme: doc.uri.scheme }, this.settings())) {
            return doc.uri;
        }
        return undefined;
    }

    private runningClient(): TorchlintClient | undefined {
        const client = this.client;
        if (client?.isRunning()) {
            return client;
        }
        void this.notify('error', 'The torchlint server is not running.', 'Show Logs').then((p) => p && this.log.show());
        return undefined;
    }

    async fixAll(arg: unknown): Promise<void> {
        const uri = this.targetUri(arg);
        if (!uri) {
            void vscode.window.showInformationMessage('torchlint: open a Python file to fix.');
            return;
        }
        const client = this.runningClient();
        if (!client) {
            return;
        }
        if (client.serverCommands().has('torchlint.fixAll')) {
            // The server answers with a workspace/applyEdit, which the client applies.
            try {
                // {applied, fixed, message}; applied is false when there was nothing to fix
                // or VS Code refused the edit (the file changed meanwhile).
                const result = (await client.executeServerCommand('torchlint.fixAll', [uri.toString()])) as {
                    applied?: boolean;
                    message?: string;
                } | null;
                if (result?.applied === false) {
                    void this.notify(
                        'info',
                        result.message === 'nothing to fix'
                            ? 'No auto-fixable problems in this file.'
                            : `Fix all: ${String(result.message)}`,
                    );
                }
            } catch (err) {
                void this.notify('error', `Fix all failed: ${err instanceof Error ? err.message : String(err)}`);
            }
            return;
        }
        const document = await vscode.workspace.openTextDocument(uri);
        const range = new vscode.Range(0, 0, document.lineCount, 0);
        const actions =
            (await vscode.commands.executeCommand<vscode.CodeAction[]>(
                'vscode.executeCodeActionProvider',
                uri,
                range,
                FIX_ALL_KIND.value,
                1,
            )) ?? [];
        const action = actions.find((a) => a.kind && FIX_ALL_KIND.contains(a.kind));
        if (!action || (!action.edit && !action.command)) {
            void this.notify('info', 'No auto-fixable problems in this file.');
            return;
        }
        if (action.edit) {
            await vscode.workspace.applyEdit(action.edit);
        }
        if (action.command) {
            await vscode.commands.executeCommand(action.command.command, ...(action.command.arguments ?? []));
        }
    }

    /**
     * From the palette there is no argument (the active file is used); the
     * server's own "Confirm … by running" code actions pass
     * `{uri, code, line, column}` to narrow it to one finding, which is
     * forwarded untouched.
     */
    async confirm(...args: unknown[]): Promise<void> {
        if (!vscode.workspace.isTrusted) {
            // The user asked for it: always a visible answer, whatever torchlint.showNotifications says.
            const message = 'Running code to confirm findings is disabled in untrusted workspaces.';
            this.log.warn(message);
            const manage = 'Manage Workspace Trust';
            const pick = await vscode.window.showWarningMessage(`torchlint: ${message}`, manage);
            if (pick === manage) {
                await vscode.commands.executeCommand('workbench.trust.manage');
            }
            return;
        }
        if (!effectiveRuntimeEnabled(this.settings(), true)) {
            const open = 'Open Setting';
            const pick = await vscode.window.showWarningMessage(
                'torchlint: confirming findings runs this file. Enable torchlint.runtime.enabled to allow it.',
                open,
            );
            if (pick === open) {
                await vscode.commands.executeCommand('workbench.action.openSettings', 'torchlint.runtime.enabled');
            }
            return;
        }
        const first = args[0];
        const target = isFindingTarget(first) ? first : undefined;
        const uri = target ? vscode.Uri.parse(target.uri) : this.confirmTargetUri(first);
        if (!uri) {
            void vscode.window.showInformationMessage(
                'torchlint: open a Python file, a notebook cell or (with torchlint.lintMarkdown) a Markdown file to confirm its findings.',
            );
            return;
        }
        const client = this.runningClient();
        if (!client) {
            return;
        }
        if (!client.serverCommands().has('torchlint.confirm')) {
            void this.notify('error', 'This torchlint server does not offer runtime confirmation (torchlint.confirm).');
            return;
        }
        const name = describeDocument(uri);
        let result: unknown;
        try {
            // The server reports (cancellable) work-done progress itself.
            result = await client.executeServerCommand('torchlint.confirm', [target ?? uri.toString()]);
        } catch (err) {
            void this.notify('error', `Running ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
            return;
        }
        const summary =
            result && typeof result === 'object' && typeof (result as { message?: unknown }).message === 'string'
                ? (result as { message: string }).message
                : 'done';
        this.log.info(`Confirm ${name}: ${JSON.stringify(result)}`);
        vscode.window.setStatusBarMessage(`torchlint: ${name}: ${summary}`, 10_000);
        void this.notify('info', `${name}: ${summary}`);
    }

    async dispose(): Promise<void> {
        await this.stop();
        this.disposables.forEach((d) => d.dispose());
    }
}

/** "train.py", or "tutorial.ipynb, cell 3" for a notebook cell. */
function describeDocument(uri: vscode.Uri): string {
    if (uri.scheme === 'vscode-notebook-cell') {
        for (const nb of vscode.workspace.notebookDocuments) {
            const index = nb.getCells().findIndex((c) => c.document.uri.toString() === uri.toString());
            if (index >= 0) {
                return `${vscode.workspace.asRelativePath(nb.uri)}, cell ${index + 1}`;
            }
        }
    }
    return vscode.workspace.asRelativePath(uri);
}

function isFindingTarget(value: unknown): value is { uri: string } {
    return (
        typeof value === 'object' &&
        value !== null &&
        !(value instanceof vscode.Uri) &&
        typeof (value as { uri?: unknown }).uri === 'string'
    );
}

let controller: Controller | undefined;

export function activate(context: vscode.ExtensionContext): TorchlintApi {
    const log = vscode.window.createOutputChannel('torchlint', { log: true });
    const c = new Controller(context, log);
    controller = c;
    context.subscriptions.push(
        log,
        vscode.commands.registerCommand('torchlint.restart', () => c.restart()),
        vscode.commands.registerCommand('torchlint.showLogs', () => log.show()),
        vscode.commands.registerCommand('torchlint.install', (options?: { confirmed?: boolean }) => c.installCommand(options)),
        vscode.commands.registerCommand('torchlint.fixAll', (arg?: unknown) => c.fixAll(arg)),
        vscode.commands.registerCommand('torchlint.confirm', (...args: unknown[]) => c.confirm(...args)),
    );
    c.registerListeners();
    // Not awaited: the probe and server start can take seconds and activation
    // should not hold up the editor; the status bar reports progress.
    void c.start();
    return c.createApi();
}

export async function deactivate(): Promise<void> {
    const c = controller;
    controller = undefined;
    await c?.dispose();
}
