// Status-bar presentation of the server state; pure so it is unit-tested.

export type ServerState = 'starting' | 'running' | 'stopped' | 'error' | 'disabled';

export interface StatusPresentation {
    text: string;
    tooltip: string;
    /** ThemeColor id for the item's background, when the state needs attention. */
    background?: 'statusBarItem.errorBackground' | 'statusBarItem.warningBackground';
}

export function statusPresentation(state: ServerState, detail?: string): StatusPresentation {
    const suffix = detail ? `\n${detail}` : '';
    switch (state) {
        case 'starting':
            return { text: '$(loading~spin) torchlint', tooltip: `torchlint: starting${suffix}` };
        case 'running':
            return { text: '$(check) torchlint', tooltip: `torchlint: running${suffix}\nClick to show logs.` };
        case 'stopped':
            return {
                text: '$(circle-slash) torchlint',
                tooltip: `torchlint: stopped${suffix}\nClick to show logs.`,
                background: 'statusBarItem.warningBackground',
            };
        case 'disabled':
            return { text: '$(circle-slash) torchlint', tooltip: `torchlint: disabled (torchlint.enable is false)${suffix}` };
        case 'error':
            return {
                text: '$(error) torchlint',
                tooltip: `torchlint: error${suffix}\nClick to show logs.`,
                background: 'statusBarItem.errorBackground',
            };
    }
}
