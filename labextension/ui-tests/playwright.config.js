/**
 * Galata/Playwright configuration: Debian's chromium, the venv's `jupyter lab` (the Makefile puts
 * .venv/bin first on PATH), screenshots kept under test-results/.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const PORT = 8899;

module.exports = {
  ...baseConfig,
  timeout: 90_000,
  retries: 0,
  workers: 1,
  reporter: [['list']],
  outputDir: 'test-results',
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${PORT}`,
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox']
    },
    video: 'off',
    trace: 'off',
    screenshot: 'only-on-failure'
  },
  webServer: {
    // The server's log goes to a file (gitignored) instead of the test report.
    command: 'jupyter lab --config jupyter_server_test_config.py > jupyter-server.log 2>&1',
    url: `http://127.0.0.1:${PORT}/lab`,
    timeout: 60_000,
    reuseExistingServer: !process.env.CI
  }
};
