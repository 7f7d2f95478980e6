import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
    classifyConfigChange,
    confirmableDocument,
    documentSelector,
    effectiveRuntimeEnabled,
    readSettings,
    serverLogLevel,
    shouldNotify,
    toInitializationOptions,
    toServerSettings,
} from '../settings';

const getter = (values: Record<string, unknown>) => (key: string) => values[key];

describe('readSettings', () => {
    it('uses the package.json defaults when nothing is set', () => {
        assert.deepEqual(readSettings(getter({})), {
            enable: true,
            select: [],
            ignore: [],
            args: [],
            path: [],
            interpreter: [],
            importStrategy: 'fromEnvironment',
            runtimeEnabled: false,
            showNotifications: 'onError',
            diagnosticMode: 'pull',
            configurationPreference: 'editorFirst',
            lintMarkdown: false,
        });
    });

    it('reads every setting', () => {
        const s = readSettings(
            getter({
                enable: false,
                select: ['TL1', 'TL201'],
                ignore: ['TL202'],
                args: ['--verbose'],
                path: ['/opt/torchlint/bin/torchlint'],
                interpreter: ['/venv/bin/python', '-X', 'utf8'],
                importStrategy: 'useBundled',
                'runtime.enabled': true,
                showNotifications: 'always',
                diagnosticMode: 'push',
            }),
        );
        assert.equal(s.enable, false);
        assert.deepEqual(s.select, ['TL1', 'TL201']);
        assert.deepEqual(s.ignore, ['TL202']);
        assert.deepEqual(s.args, ['--verbose']);
        assert.deepEqual(s.path, ['/opt/torchlint/bin/torchlint']);
        assert.deepEqual(s.interpreter, ['/venv/bin/python', '-X', 'utf8']);
        assert.equal(s.importStrategy, 'useBundled');
        assert.equal(s.runtimeEnabled, true);
        assert.equal(s.showNotifications, 'always');
        assert.equal(s.diagnosticMode, 'push');
    });

    it('accepts a plain string where a list is expected and drops junk entries', () => {
        const s = readSettings(getter({ interpreter: '  /usr/bin/python3 ', select: ['TL1', 3, '', '  '] }));
        assert.deepEqual(s.interpreter, ['/usr/bin/python3']);
        assert.deepEqual(s.select, ['TL1']);
    });

    it('falls back to defaults for invalid enum values and non-boolean runtime.enabled', () => {
        const s = readSettings(
            getter({ importStrategy: 'bundled', showNotifications: 'loud', 'runtime.enabled': 'true', diagnosticMode: 'both' }),
        );
        assert.equal(s.importStrategy, 'fromEnvironment');
        assert.equal(s.diagnosticMode, 'pull');
        assert.equal(s.showNotifications, 'onError');
        assert.equal(s.runtimeEnabled, false);
    });
});

describe('workspace trust gating of runtime.enabled', () => {
    const enabled = readSettings(getter({ 'runtime.enabled': true }));
    const disabled = readSettings(getter({}));

    it('is on only when enabled and trusted', () => {
        assert.equal(effectiveRuntimeEnabled(enabled, true), true);
        assert.equal(effectiveRuntimeEnabled(enabled, false), false);
        assert.equal(effectiveRuntimeEnabled(disabled, true), false);
        assert.equal(effectiveRuntimeEnabled(disabled, false), false);
    });

    it('never reaches the server as true in an untrusted workspace', () => {
        const opts = { trusted: false, logLevel: 'info' as const };
        assert.deepEqual(toServerSettings(enabled, opts).runtime, { enabled: false });
    });
});

describe('toServerSettings (initializationOptions and the torchlint configuration section)', () => {
    it('has exactly the shape the server accepts', () => {
        const s = readSettings(
            getter({
                select: ['TL2'],
                ignore: ['TL202'],
                'runtime.enabled': true,
                interpreter: ['/venv/bin/python'],
                args: ['--x'],
                configurationPreference: 'filesystemFirst',
            }),
        );
        assert.deepEqual(toServerSettings(s, { trusted: true, logLevel: 'debug' }), {
            select: ['TL2'],
            ignore: ['TL202'],
            runtime: { enabled: true },
            logLevel: 'debug',
            configurationPreference: 'filesystemFirst',
        });
        // An unknown value is the documented default, and changing it needs no restart.
        assert.equal(readSettings(getter({ configurationPreference: 'nope' })).configurationPreference, 'editorFirst');
        assert.equal(classifyConfigChange((k) => k === 'torchlint.configurationPreference'), 'live');
    });

    it('sends an empty torchlint.select as null, leaving the selection to the project config', () => {
        // An explicit [] would be "select nothing" and silence every rule; null
        // also resets a select sent earlier, where leaving the key out would not.
        const out = toServerSettings(readSettings(getter({ select: [] })), { trusted: true, logLevel: 'info' });
        assert.equal(out.select, null);
        assert.deepEqual(out.ignore, []);
    });

    it('copies lists so later mutation cannot leak between messages', () => {
        const s = readSettings(getter({ select: ['TL1'] }));
        const out = toServerSettings(s, { trusted: true, logLevel: 'info' });
        out.select?.push('TL9');
        assert.deepEqual(s.select, ['TL1']);
    });
});

describe('toInitializationOptions', () => {
    const opts = { trusted: true, logLevel: 'info' as const };

    it('asks the server for pull-only diagnostics by default', () => {
        // The server would otherwise also push, and VS Code would list every finding twice.
        assert.deepEqual(toInitializationOptions(readSettings(getter({ ignore: ['TL202'] })), opts), {
            select: null,
            ignore: ['TL202'],
            runtime: { enabled: false },
            logLevel: 'info',
            configurationPreference: 'editorFirst',
            diagnosticMode: 'pull',
        });
    });

    it('sends the mode the user chose', () => {
        for (const mode of ['push', 'auto', 'pull'] as const) {
            const s = readSettings(getter({ diagnosticMode: mode }));
            assert.equal(toInitializationOptions(s, opts).diagnosticMode, mode);
        }
    });

    it('keeps the trust gate of the live settings', () => {
        const s = readSettings(getter({ 'runtime.enabled': true }));
        assert.deepEqual(toInitializationOptions(s, { trusted: false, logLevel: 'info' }).runtime, { enabled: false });
    });
});

describe('serverLogLevel', () => {
    it('maps VS Code log levels to the server logLevel', () => {
        assert.equal(serverLogLevel(0), 'error'); // Off
        assert.equal(serverLogLevel(1), 'debug'); // Trace
        assert.equal(serverLogLevel(2), 'debug');
        assert.equal(serverLogLevel(3), 'info');
        assert.equal(serverLogLevel(4), 'warning');
        assert.equal(serverLogLevel(5), 'error');
        assert.equal(serverLogLevel(undefined), 'info');
    });
});

describe('classifyConfigChange', () => {
    const changed = (...keys: string[]) => (key: string) => keys.some((k) => k === key || k.startsWith(`${key}.`));

    it('restarts for settings that change how the server is started', () => {
        for (const key of ['enable', 'args', 'path', 'interpreter', 'importStrategy', 'diagnosticMode']) {
            assert.equal(classifyConfigChange(changed(`torchlint.${key}`)), 'restart', key);
        }
    });

    it('pushes select/ignore/runtime.enabled to the running server', () => {
        assert.equal(classifyConfigChange(changed('torchlint.select')), 'live');
        assert.equal(classifyConfigChange(changed('torchlint.ignore')), 'live');
        assert.equal(classifyConfigChange(changed('torchlint.runtime.enabled')), 'live');
    });

    it('restart wins when both kinds change', () => {
        assert.equal(classifyConfigChange(changed('torchlint.select', 'torchlint.interpreter')), 'restart');
    });

    it('ignores other sections and client-only settings', () => {
        assert.equal(classifyConfigChange(changed('python.defaultInterpreterPath')), 'none');
        assert.equal(classifyConfigChange(changed('torchlint.trace.server')), 'none');
        assert.equal(classifyConfigChange(changed('torchlint.showNotifications')), 'none');
    });
});

describe('shouldNotify', () => {
    it('follows torchlint.showNotifications', () => {
        assert.deepEqual(
            (['off', 'onError', 'onWarning', 'always'] as const).map((level) =>
                (['error', 'warning', 'info'] as const).map((sev) => shouldNotify(level, sev)),
            ),
            [
                [false, false, false],
                [true, false, false],
                [true, true, false],
                [true, true, true],
            ],
        );
    });
});

describe('documentSelector', () => {
    it('selects Python files and notebook cells; Markdown and Quarto only with lintMarkdown', () => {
        const off = documentSelector({ lintMarkdown: false });
        assert.deepEqual(off, [
            { scheme: 'file', language: 'python' },
            { scheme: 'untitled', language: 'python' },
            { scheme: 'vscode-notebook-cell', language: 'python' },
        ]);
        const on = documentSelector({ lintMarkdown: true });
        assert.deepEqual(on.slice(3), [
            { scheme: 'file', language: 'markdown' },
            { scheme: 'file', language: 'quarto' },
        ]);
    });

    it('restarts the client when lintMarkdown changes (the selector is fixed at start)', () => {
        assert.equal(classifyConfigChange((k) => k === 'torchlint.lintMarkdown'), 'restart');
    });
});

describe('confirmableDocument (the palette\'s "Confirm findings ... by running it")', () => {
    it('offers Python files and notebook cells; Markdown and Quarto files only with lintMarkdown', () => {
        const off = { lintMarkdown: false };
        const on = { lintMarkdown: true };
        assert.equal(confirmableDocument({ languageId: 'python', scheme: 'file' }, off), true);
        assert.equal(confirmableDocument({ languageId: 'python', scheme: 'vscode-notebook-cell' }, off), true);
        assert.equal(confirmableDocument({ languageId: 'markdown', scheme: 'vscode-notebook-cell' }, on), false);
        assert.equal(confirmableDocument({ languageId: 'markdown', scheme: 'file' }, off), false);
        assert.equal(confirmableDocument({ languageId: 'markdown', scheme: 'file' }, on), true);
        assert.equal(confirmableDocument({ languageId: 'quarto', scheme: 'file' }, on), true);
        assert.equal(confirmableDocument({ languageId: 'json', scheme: 'file' }, on), false);
    });
});
