/** e2e tests: the real app against real Redis and fake HTTP peers on loopback. */
module.exports = {
  rootDir: '..',
  testRegex: 'test/e2e/.*\\.e2e-spec\\.ts$',
  transform: { '^.+\\.ts$': 'ts-jest' },
  moduleFileExtensions: ['js', 'json', 'ts'],
  testEnvironment: 'node',
  testTimeout: 60000,
  // Every suite closes its apps, fakes and child processes; this only keeps a stray handle (a
  // private redis-server watchdog, a socket of a failed suite) from holding CI open for ever.
  forceExit: true,
};
