import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ServerState, statusPresentation } from '../status';

describe('statusPresentation', () => {
    it('names every state in the tooltip and flags only the bad ones', () => {
        const states: ServerState[] = ['starting', 'running', 'stopped', 'error', 'disabled'];
        for (const state of states) {
            const p = statusPresentation(state);
            assert.match(p.text, /torchlint$/);
            assert.match(p.tooltip, new RegExp(`torchlint: ${state}`));
        }
        assert.equal(statusPresentation('running').background, undefined);
        assert.equal(statusPresentation('error').background, 'statusBarItem.errorBackground');
        assert.equal(statusPresentation('stopped').background, 'statusBarItem.warningBackground');
    });

    it('spins while starting and carries the detail', () => {
        const p = statusPresentation('starting', '/usr/bin/python3 -m torchlint server');
        assert.match(p.text, /~spin/);
        assert.match(p.tooltip, /python3 -m torchlint server/);
    });
});
