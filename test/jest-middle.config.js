/**
 * Middle tier: the turn and sender logic on the real classes, with in-memory stores and in-process
 * fakes of the LLM and the BSP. No Redis, no HTTP: seconds, not minutes.
 */
module.exports = {
  rootDir: '..',
  testRegex: 'test/middle/.*\\.spec\\.ts$',
  transform: { '^.+\\.ts$': 'ts-jest' },
  moduleFileExtensions: ['js', 'json', 'ts'],
  testEnvironment: 'node',
};
