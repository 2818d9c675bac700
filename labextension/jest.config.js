// Unit tests of the pure modules (formatting, queries, diffs, paging, parameters, DOM helpers).
// They import no @jupyterlab/@lumino code (specs that reach a module importing one mock it), so plain
// ts-jest + jsdom is enough.
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
