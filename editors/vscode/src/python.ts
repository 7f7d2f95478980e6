// The Python extension is optional (deliberately not in extensionDependencies):
// torchlint must also start for users who manage interpreters themselves, so
// every call here degrades to "no selection" when that extension is absent.
import * as vscode from 'vscode';
import { PythonExtension } from '@vscode/python-extension';

export const PYTHON_EXTENSION_ID = 'ms-python.python';

export class PythonEnvironments implements vscode.Disposable {
    private api: PythonExtension | undefined;
    private readonly disposables: vscode.Disposable[] = [];
    private readonly changed = new vscode.EventEmitter<void>();
    private installed = PythonEnvironments.isInstalled();

    /** Fires when the selected environment changes or the Python extension comes or goes. */
    readonly onDidChange = this.changed.event;

    constructor(private readonly log: vscode.LogOutputChannel) {
        this.disposables.push(
            this.changed,
            vscode.extensions.onDidChange(() => {
                const now = PythonEnvironments.isInstalled();
                if (now !== this.installed) {
                    this.installed = now;
                    this.api = undefined;
                    this.changed.fire();
                }
            }),
        );
    }

    static isInstalled(): boolean {
        return vscode.extensions.getExtension(PYTHON_EXTENSION_ID) !== undefined;
    }

    /** Executable of the environment selected for `resource`, or undefined without a usable selection. */
    async selectedExecutable(resource: vscode.Uri | undefined): Promise<string | undefined> {
        if (!PythonEnvironments.isInstalled()) {
            return undefined;
        }
        try {
            const api = await this.load();
            const active = api.environments.getActiveEnvironmentPath(resource);
            const resolved = await api.environments.resolveEnvironment(active);
            const executable = resolved?.executable.uri?.fsPath;
            if (!executable) {
                this.log.warn(`Python extension: selected environment ${active.path} has no usable interpreter`);
            }
            return executable;
        } catch (err) {
            this.log.warn(`Python extension API unavailable: ${String(err)}`);
            return undefined;
        }
    }

    private async load(): Promise<PythonExtension> {
        if (this.api) {
            return this.api;
        }
        const api = await PythonExtension.api();
        this.disposables.push(api.environments.onDidChangeActiveEnvironmentPath(() => this.changed.fire()));
        this.api = api;
        return api;
    }

    dispose(): void {
        this.disposables.forEach((d) => d.dispose());
    }
}
