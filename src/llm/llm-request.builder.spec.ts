import {
  buildLlmRequest,
  halveHistory,
  historyLength,
  type HistoryEntry,
  capTurn,
  MAX_TURN_CHARS,
} from './llm-request.builder';

const system = 'SYSTEM PROMPT';

describe('buildLlmRequest', () => {
  it('puts the system prompt first, history in order, and the turn last as one user message', () => {
    const request = buildLlmRequest({
      systemPrompt: system,
      history: [
        { role: 'user', text: 'Hello' },
        { role: 'assistant', text: 'Welcome! Your name?' },
      ],
      turnMessages: ['Sara', 'I need a dentist', '  spaces kept  '],
      user: 'chat-hash',
    });
    expect(request).toEqual({
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Welcome! Your name?' },
        { role: 'user', content: 'Sara\nI need a dentist\n  spaces kept  ' },
      ],
      user: 'chat-hash',
    });
  });

  it('omits `user` when not given', () => {
    const request = buildLlmRequest({ systemPrompt: system, history: [], turnMessages: ['hi'] });
    expect(request).not.toHaveProperty('user');
  });

  it('keeps Arabic and emoji verbatim', () => {
    const turn = 'مرحبا 👋\nأريد موعداً';
    const request = buildLlmRequest({ systemPrompt: system, history: [], turnMessages: turn.split('\n') });
    expect(request.messages[1].content).toBe(turn);
  });

  it('merges consecutive history entries of one role, as the burst was presented then', () => {
    const request = buildLlmRequest({
      systemPrompt: system,
      history: [
        { role: 'user', text: 'a' },
        { role: 'user', text: 'b' },
        { role: 'assistant', text: 'c' },
        { role: 'assistant', text: 'd' },
        { role: 'user', text: 'e' },
      ],
      turnMessages: ['f'],
    });
    expect(request.messages.map((m) => [m.role, m.content])).toEqual([
      ['system', system],
      ['user', 'a\nb'],
      ['assistant', 'c\nd'],
      ['user', 'e'],
      ['user', 'f'],
    ]);
  });

  it('refuses a turn without patient messages', () => {
    expect(() => buildLlmRequest({ systemPrompt: system, history: [], turnMessages: [] })).toThrow();
  });

  describe('trimming to the budget', () => {
    const history: HistoryEntry[] = Array.from({ length: 10 }, (_, i) => ({
      role: i % 2 === 0 ? 'user' : 'assistant',
      text: `${i}`.padEnd(100, '.'),
    }));

    it('drops the oldest history first and keeps the newest contiguous run', () => {
      // system 13 + turn 4 + 3 × 100 = 317 fits in 350; a fourth entry would not.
      const request = buildLlmRequest({ systemPrompt: system, history, turnMessages: ['turn'], budgetChars: 350 });
      expect(request.messages.map((m) => m.content[0])).toEqual(['S', '7', '8', '9', 't']);
      const total = request.messages.reduce((n, m) => n + m.content.length, 0);
      expect(total).toBeLessThanOrEqual(350);
    });

    it('sends the whole history when it fits', () => {
      const request = buildLlmRequest({ systemPrompt: system, history, turnMessages: ['turn'] });
      expect(historyLength(request)).toBe(10);
    });

    it('never trims the system prompt or the turn (up to MAX_TURN_CHARS) to the budget, even when they alone exceed it', () => {
      const bigTurn = 'x'.repeat(500);
      const request = buildLlmRequest({ systemPrompt: system, history, turnMessages: [bigTurn], budgetChars: 100 });
      expect(request.messages).toEqual([
        { role: 'system', content: system },
        { role: 'user', content: bigTurn },
      ]);
    });

    it('does not skip an old entry that would fit after a newer one did not (no gaps)', () => {
      const request = buildLlmRequest({
        systemPrompt: system,
        history: [
          { role: 'user', text: 'short' },
          { role: 'assistant', text: 'y'.repeat(300) },
          { role: 'user', text: 'newest' },
        ],
        turnMessages: ['t'],
        budgetChars: 100,
      });
      expect(request.messages.map((m) => m.content)).toEqual([system, 'newest', 't']);
    });
  });
});

describe('halveHistory', () => {
  const build = (n: number) =>
    buildLlmRequest({
      systemPrompt: system,
      history: Array.from({ length: n }, (_, i) => ({ role: i % 2 === 0 ? 'user' : 'assistant', text: `h${i}` })),
      turnMessages: ['turn'],
      user: 'u',
    });

  it('drops the older half of the history, keeps system prompt, turn and user', () => {
    expect(halveHistory(build(6))).toEqual({
      messages: [
        { role: 'system', content: system },
        { role: 'assistant', content: 'h3' },
        { role: 'user', content: 'h4' },
        { role: 'assistant', content: 'h5' },
        { role: 'user', content: 'turn' },
      ],
      user: 'u',
    });
  });

  it('keeps the newer half rounded down', () => {
    const halved = halveHistory(build(5))!;
    expect(halved.messages.map((m) => m.content)).toEqual([system, 'h3', 'h4', 'turn']);
    expect(halveHistory(build(1))!.messages.map((m) => m.content)).toEqual([system, 'turn']);
  });

  it('returns null when there is no history left to drop', () => {
    expect(halveHistory(build(0))).toBeNull();
    expect(halveHistory(halveHistory(build(1))!)).toBeNull();
  });

  it('does not modify the request it was given', () => {
    const request = build(4);
    const copy = JSON.parse(JSON.stringify(request));
    halveHistory(request);
    expect(request).toEqual(copy);
  });
});

describe('capTurn: a flood of messages in one turn', () => {
  it('keeps a turn that fits verbatim', () => {
    expect(capTurn(['a', 'b'], 100)).toBe('a\nb');
  });

  it('keeps the newest messages and says how many earlier ones were left out', () => {
    const messages = Array.from({ length: 50 }, (_, i) => `message ${i} `.padEnd(300, 'x'));
    const turn = capTurn(messages, 8000);
    expect(turn.length).toBeLessThanOrEqual(8000);
    const lines = turn.split('\n');
    expect(lines[0]).toMatch(/^\[\d+ earlier messages of the patient \(\d+ characters\) are not included/);
    expect(lines.at(-1)).toBe(messages[49]);
    const kept = lines.length - 1;
    expect(lines.slice(1)).toEqual(messages.slice(50 - kept));
    expect(lines[0]).toContain(`[${50 - kept} earlier messages`);
  });

  it('keeps the beginning of one enormous message', () => {
    const paste = 'y'.repeat(60_000);
    const turn = capTurn(['hello', paste], 8000);
    expect(turn.length).toBeLessThanOrEqual(8000);
    expect(turn).toMatch(
      /^\[The patient's message was too long: its last \d+ characters are not included\.\] \[1 earlier messages/,
    );
  });

  it('is applied by buildLlmRequest to the turn, never to the system prompt', () => {
    const request = buildLlmRequest({
      systemPrompt: 'S',
      history: [],
      turnMessages: Array.from({ length: 100 }, () => 'z'.repeat(500)),
    });
    expect(request.messages[0]).toEqual({ role: 'system', content: 'S' });
    expect(request.messages[1].content.length).toBeLessThanOrEqual(MAX_TURN_CHARS);
  });
});
