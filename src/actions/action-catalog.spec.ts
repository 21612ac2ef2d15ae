import { readFileSync } from 'node:fs';
import { parseActions } from './action-catalog';
import { targetOf } from './clinic-actions';

const book = {
  name: 'book',
  description: 'Books a slot.',
  parameters: {
    type: 'object',
    properties: { slotId: { type: 'string' }, note: { type: 'string' } },
    required: ['slotId'],
  },
  method: 'POST',
  path: '/slots/{slotId}/book',
  sideEffects: true,
  timeoutMs: 5000,
};

describe('parseActions', () => {
  it('accepts the example files', () => {
    for (const file of ['config/examples/actions.clinic.json', 'config/examples/actions.lawfirm.json']) {
      const { actions, problems } = parseActions(JSON.parse(readFileSync(file, 'utf8')));
      expect(problems).toEqual([]);
      expect(actions.length).toBeGreaterThan(0);
    }
  });

  it('reports one line per bad entry and keeps no catalog', () => {
    const { actions, problems } = parseActions({
      actions: [
        book,
        { ...book, name: 'book' },
        { ...book, name: 'bad path', path: '/a/../b' },
        { ...book, name: 'p', path: '/x/{note}' },
        { ...book, name: 'q', parameters: { type: 'object', properties: { a: { type: 'strin' } } } },
        { ...book, name: 'r', method: 'TRACE' },
        { ...book, name: 's', url: 'http://evil' },
      ],
    });
    expect(actions).toEqual([]);
    expect(problems).toEqual([
      'actions[1] "book": name: declared twice',
      'actions[2] "bad path": name: 1-64 letters, digits, _ or -',
      'actions[3] "p": path: {note} must be a required string, integer or number parameter',
      expect.stringMatching(/^actions\[4\] "q": parameters: /),
      'actions[5] "r": method: one of GET, POST, PUT, PATCH, DELETE',
      expect.stringMatching(/^actions\[6\] "s": unknown field "url"/),
    ]);
  });

  it('refuses a file that is not { actions: [...] }', () => {
    expect(parseActions([]).problems).toEqual(['must be a JSON object { "actions": [ … ] }']);
  });
});

describe('targetOf', () => {
  const [action] = parseActions({ actions: [book, { ...book, name: 'find', method: 'GET', path: '/slots' }] }).actions;
  const base = new URL('https://clinic.example/api/');

  it('fills placeholders URL-encoded and sends the other arguments as the body', () => {
    expect(targetOf(action, { slotId: '../x?y#z', note: 'hi' }, base)).toEqual({
      path: '/api/slots/..%2Fx%3Fy%23z/book',
      body: '{"note":"hi"}',
    });
  });

  it('refuses dot segments and empty values', () => {
    for (const slotId of ['..', '.', '']) expect(typeof targetOf(action, { slotId }, base)).toBe('string');
  });

  it('puts GET arguments in the query string', () => {
    const find = parseActions({ actions: [{ ...book, name: 'find', method: 'GET', path: '/slots' }] }).actions[0];
    expect(targetOf(find, { slotId: 'a&b=c' }, base)).toEqual({ path: '/api/slots?slotId=a%26b%3Dc' });
  });
});

describe('argument schemas with a format', () => {
  it('compile (strict mode knows the standard formats) and validate by them', () => {
    const { actions, problems } = parseActions({
      actions: [
        {
          name: 'remind',
          description: 'Sets a reminder.',
          method: 'POST',
          path: '/reminders',
          sideEffects: true,
          parameters: {
            type: 'object',
            properties: { at: { type: 'string', format: 'date-time' }, email: { type: 'string', format: 'email' } },
            required: ['at'],
          },
        },
      ],
    });
    expect(problems).toEqual([]);
    expect(actions[0].validate({ at: '2030-01-06T09:00:00Z', email: 'a@example.com' })).toBe(true);
    expect(actions[0].validate({ at: 'next tuesday' })).toBe(false);
  });
});
