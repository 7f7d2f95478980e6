import { randomUUID } from 'crypto';
import * as vscode from 'vscode';
import {
    ClientCapabilities,
    DynamicFeature,
    ExecuteCommandRegistrationOptions,
    ExecuteCommandRequest,
    FeatureState,
    LanguageClient,
    RegistrationData,
    ServerCapabilities,
    StaticFeature,
} from 'vscode-languageclient/node';

/**
 * Command ids that the server advertises and the extension also registers
 * itself, to add the active-editor argument, the workspace-trust gate and a
 * fallback. vscode-languageclient's built-in ExecuteCommandFeature would
 * register them a second time, and VS Code rejects a duplicate command id,
 * which would make the client fail to start.
 */
export const EXTENSION_OWNED_COMMANDS: ReadonlySet<string> = new Set(['torchlint.fixAll', 'torchlint.confirm']);

/** Stands in for the built-in ExecuteCommandFeature, minus the commands the extension owns. */
class ServerCommandsFeature implements DynamicFeature<ExecuteCommandRegistrationOptions> {
    private readonly registrations = new Map<string, { commands: string[]; disposables: vscode.Disposable[] }>();

    constructor(private readonly client: LanguageClient) {}

    get registrationType() {
        return ExecuteCommandRequest.type;
    }

    getState(): FeatureState {
        return { kind: 'workspace', id: this.registrationType.method, registrations: this.registrations.size > 0 };
    }

    fillClientCapabilities(capabilities: ClientCapabilities): void {
        capabilities.workspace = capabilities.workspace ?? {};
        capabilities.workspace.executeCommand = { dynamicRegistration: true };
    }

    initialize(capabilities: ServerCapabilities): void {
        if (capabilities.executeCommandProvider) {
            this.register({ id: randomUUID(), registerOptions: { ...capabilities.executeCommandProvider } });
        }
    }

    register(data: RegistrationData<ExecuteCommandRegistrationOptions>): void {
        const commands = data.registerOptions.commands ?? [];
        const disposables = commands
            .filter((command) => !EXTENSION_OWNED_COMMANDS.has(command))
            .map((command) =>
                vscode.commands.registerCommand(command, (...args: unknown[]) =>
                    this.client.sendRequest(ExecuteCommandRequest.type, { command, arguments: args }),
                ),
            );
        this.registrations.set(data.id, { commands, disposables });
    }

    unregister(id: string): void {
        this.registrations.get(id)?.disposables.forEach((d) => d.dispose());
        this.registrations.delete(id);
    }

    clear(): void {
        this.registrations.forEach((r) => r.disposables.forEach((d) => d.dispose()));
        this.registrations.clear();
    }

    advertised(): Set<string> {
        const all = new Set<string>();
        this.registrations.forEach((r) => r.commands.forEach((c) => all.add(c)));
        return all;
    }
}

function isExecuteCommandFeature(feature: StaticFeature | DynamicFeature<unknown>): boolean {
    const method = (feature as Partial<DynamicFeature<unknown>>).registrationType?.method;
    return method === ExecuteCommandRequest.method && !(feature instanceof ServerCommandsFeature);
}

export class TorchlintClient extends LanguageClient {
    // Called from the base constructor (registerBuiltinFeatures), so it must
    // not rely on fields of this subclass.
    override registerFeature(feature: StaticFeature | DynamicFeature<unknown>): void {
        super.registerFeature(isExecuteCommandFeature(feature) ? new ServerCommandsFeature(this) : feature);
    }

    /** Commands the running server advertised (statically or by dynamic registration). */
    serverCommands(): Set<string> {
        const feature = this.getFeature(ExecuteCommandRequest.method as never) as unknown;
        return feature instanceof ServerCommandsFeature ? feature.advertised() : new Set();
    }

    executeServerCommand(command: string, args: unknown[]): Promise<unknown> {
        return this.sendRequest(ExecuteCommandRequest.type, { command, arguments: args });
    }
}
