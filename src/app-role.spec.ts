import { AppRole, consumesJobs, isAppRole, readRoleFlag, servesHttpApi } from './app-role';

describe('readRoleFlag', () => {
  it('defaults to all', () => {
    expect(readRoleFlag({}, [])).toBe('all');
  });

  it('reads APP_ROLE', () => {
    expect(readRoleFlag({ APP_ROLE: 'worker' }, [])).toBe('worker');
  });

  it('--role=<x> overrides APP_ROLE', () => {
    expect(readRoleFlag({ APP_ROLE: 'receiver' }, ['--role=worker'])).toBe('worker');
  });

  it('--role <x> (space form) overrides APP_ROLE', () => {
    expect(readRoleFlag({ APP_ROLE: 'worker' }, ['--inspect', '--role', 'receiver', 'x'])).toBe('receiver');
  });

  it('returns an unknown value as is, so validation reports it', () => {
    expect(readRoleFlag({}, ['--role=bogus'])).toBe('bogus');
    expect(readRoleFlag({ APP_ROLE: 'bogus' }, [])).toBe('bogus');
  });

  it('ignores look-alike arguments', () => {
    expect(readRoleFlag({ APP_ROLE: 'receiver' }, ['--roles=worker', '--role-x', 'worker'])).toBe('receiver');
  });
});

describe('role predicates', () => {
  it('isAppRole accepts exactly the three roles', () => {
    expect(['receiver', 'worker', 'all'].every(isAppRole)).toBe(true);
    expect(['', 'Worker', 'both', undefined, 1].some(isAppRole)).toBe(false);
  });

  it('only receiver and all serve the HTTP API; only worker and all consume jobs', () => {
    expect([AppRole.Receiver, AppRole.Worker, AppRole.All].map(servesHttpApi)).toEqual([true, false, true]);
    expect([AppRole.Receiver, AppRole.Worker, AppRole.All].map(consumesJobs)).toEqual([false, true, true]);
  });
});
