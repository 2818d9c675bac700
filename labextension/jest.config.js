// Unit tests of the pure modules (formatting, queries, diffs, paging, parameters, DOM helpers).
// They import no @jupyterlab package, so plain ts-jest + jsdom is enough.
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/src'],
  testMatch: ['**/__tests__/**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
