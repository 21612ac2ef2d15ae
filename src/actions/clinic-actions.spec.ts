import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig } from '../config/app-config';
import { validateEnv } from '../config/validate-env';
import { type ToolResult } from '../conversation/turn.types';
import { AppLogger } from '../logging/app-logger';
import { MetricsService } from '../metrics/metrics.service';
import { testEnv } from '../../test/utils/test-env';
import { ClinicActions } from './clinic-actions';
import { catalogOf, type McpTool, type McpTools } from './mcp-tools';

const schema = {
  type: 'object' as const,
  properties: { slotId: { type: 'string' } },
  required: ['slotId'],
  additionalProperties: false,
};

/** McpTools as ClinicActions sees it, with a listing of two tools and no server. */
function fakeMcp(pending = false) {
  const listed = pending
    ? []
    : catalogOf(
        [
          { name: 'mcp_find', description: 'Finds.', inputSchema: schema, annotations: { readOnlyHint: true } },
          { name: 'mcp_book', description: 'Books.', inputSchema: schema },
        ],
        new Set(),
      ).tools;
  const byName = new Map(listed.map((t) => [t.name, t]));
  const call = jest.fn<Promise<ToolResult>, [McpTool, Record<string, unknown>, string | undefined]>(() =>
    Promise.resolve({ outcome: 'ok', content: '{"ok":true,"result":{}}' }),
  );
  const mcp = {
    pending,
    tools: listed.map((t) => ({
      type: 'function',
      function: { name: t.name, description: t.description, parameters: t.parameters },
    })),
    names: [...byName.keys()],
    tool: (name: string) => byName.get(name),
    call,
    start: jest.fn(() => Promise.resolve()),
  };
  return { mcp: mcp as unknown as McpTools, call };
}

function clinicActions(
  env: Record<string, string>,
  mcp: McpTools,
): { actions: ClinicActions; metrics: MetricsService } {
  const metrics = new MetricsService();
  const config = new AppConfig(validateEnv(testEnv({ APP_ROLE: 'worker', ...env })));
  return { actions: new ClinicActions(config, metrics, new AppLogger('silent'), mcp), metrics };
}

const at = { turnId: 'turn-1', round: 1, index: 0 };
const call = (name: string, args: unknown) => ({ id: 'c1', name, arguments: JSON.stringify(args) });

describe('ClinicActions with MCP tools', () => {
  it('with only MCP_SERVER_URL: no CLINIC_API_BASE_URL needed, the MCP tools are the tools', () => {
    const { mcp } = fakeMcp();
    const { actions } = clinicActions({ MCP_SERVER_URL: 'http://127.0.0.1:1/mcp' }, mcp);
    expect(actions.enabled).toBe(true);
    expect(actions.tools.map((t) => t.function.name)).toEqual(['mcp_find', 'mcp_book']);
    expect(actions.sideEffects('mcp_book')).toBe(true);
    expect(actions.sideEffects('mcp_find')).toBe(false);
  });

  it('declared actions first, then the MCP tools', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tawasul-actions-'));
    const file = join(dir, 'actions.json');
    const declared = {
      name: 'book',
      description: 'Books.',
      parameters: schema,
      method: 'POST',
      path: '/b',
      sideEffects: true,
    };
    writeFileSync(file, JSON.stringify({ actions: [declared] }));
    const { mcp } = fakeMcp();
    const { actions } = clinicActions({ ACTIONS_FILE: file, CLINIC_API_BASE_URL: 'http://127.0.0.1:1/api' }, mcp);
    expect(actions.tools.map((t) => t.function.name)).toEqual(['book', 'mcp_find', 'mcp_book']);
  });

  it('validates the arguments before any call: an invalid call gets an error result and no request', async () => {
    const { mcp, call: mcpCall } = fakeMcp();
    const { actions, metrics } = clinicActions({}, mcp);
    const result = await actions.run(call('mcp_book', { slotId: 42 }), at);
    expect(result.outcome).toBe('invalid');
    expect(JSON.parse(result.content).error).toMatch(/do not match the action's parameters: \/slotId must be string/);
    expect((await actions.run({ id: 'c', name: 'mcp_book', arguments: '{not json' }, at)).outcome).toBe('invalid');
    expect(mcpCall).not.toHaveBeenCalled();
    const counted = await metrics.registry.getSingleMetricAsString('tawasul_actions_total');
    expect(counted).toContain('tawasul_actions_total{action="mcp_book",outcome="invalid"} 2');
  });

  it('a side-effecting tool gets the idempotency key of its call; a read-only one none', async () => {
    const { mcp, call: mcpCall } = fakeMcp();
    const { actions, metrics } = clinicActions({}, mcp);
    expect((await actions.run(call('mcp_book', { slotId: 's1' }), at)).outcome).toBe('ok');
    expect((await actions.run(call('mcp_find', { slotId: 's1' }), { ...at, index: 1 })).outcome).toBe('ok');
    expect(mcpCall.mock.calls.map(([tool, args, key]) => [tool.name, args, key])).toEqual([
      ['mcp_book', { slotId: 's1' }, 'turn-1.1.0'],
      ['mcp_find', { slotId: 's1' }, undefined],
    ]);
    actions.reused('mcp_book');
    actions.reused('made_up');
    const counted = await metrics.registry.getSingleMetricAsString('tawasul_actions_total');
    expect(counted).toContain('tawasul_actions_total{action="mcp_book",outcome="ok"} 1');
    expect(counted).toContain('tawasul_actions_total{action="mcp_book",outcome="reused"} 1');
    expect(counted).toContain('tawasul_actions_total{action="unknown",outcome="reused"} 1');
    const seconds = await metrics.registry.getSingleMetricAsString('tawasul_action_seconds');
    expect(seconds).toContain('tawasul_action_seconds_count{action="mcp_find"} 1');
  });

  it('a call of a tool not listed yet (server down at start-up) is unavailable, not invalid', async () => {
    const { mcp } = fakeMcp(true);
    const { actions } = clinicActions({ MCP_SERVER_URL: 'http://127.0.0.1:1/mcp' }, mcp);
    expect(actions.enabled).toBe(false);
    expect((await actions.run(call('mcp_book', { slotId: 's1' }), at)).outcome).toBe('unavailable');
  });

  it('an unknown name once listed is invalid, naming the tools of both sources', async () => {
    const { mcp } = fakeMcp();
    const { actions } = clinicActions({}, mcp);
    const result = await actions.run(call('nope', {}), at);
    expect(result.outcome).toBe('invalid');
    expect(JSON.parse(result.content).error).toBe('there is no action "nope"; use one of: mcp_find, mcp_book');
  });
});
