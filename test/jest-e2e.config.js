/** e2e tests: the real app against real Redis and fake HTTP peers on loopback. */
module.exports = {
  rootDir: '..',
  testRegex: 'test/e2e/.*\\.e2e-spec\\.ts$',
  transform: { '^.+\\.ts$': 'ts-jest' },
  moduleFileExtensions: ['js', 'json', 'ts'],
  testEnvironment: 'node',
  testTimeout: 60000,
  // No forceExit: every suite closes what it opened (apps, fakes, Redis clients, BullMQ queues and
  // the connections handed to them, child processes), so the run ends by itself. A run that does
  // not end has a leak to fix; --detectOpenHandles, or process.getActiveResourcesInfo(), names it.
};
