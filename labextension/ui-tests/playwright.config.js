/**
 * Galata/Playwright configuration: Debian's chromium, the venv's `jupyter lab` (the Makefile puts
 * .venv/bin first on PATH), screenshots kept under test-results/.
 */
const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

// LLMOPS_UI_PORT: run a second suite next to one already serving the default port. A non-default port also
// gets its own output folder and server log, so the two runs never clean or overwrite each other's files.
const PORT = Number(process.env.LLMOPS_UI_PORT || 8899);
const SUFFIX = PORT === 8899 ? '' : `-${PORT}`;
// Notebook 7 (tests/notebook7.spec.ts) runs on the next port; jupyter_notebook_test_config.py computes the same.
const NB7_PORT = Number(process.env.LLMOPS_NB7_PORT || PORT + 1);
process.env.LLMOPS_NB7_PORT = String(NB7_PORT); // for the spec and the server config

module.exports = {
  ...baseConfig,
  timeout: 90_000,
  retries: 0,
  workers: 1,
  reporter: [['list']],
  outputDir: `test-results${SUFFIX}`,
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
  webServer: [
    {
      // The server's log goes to a file (gitignored) instead of the test report.
      command: `jupyter lab --config jupyter_server_test_config.py > jupyter-server${SUFFIX}.log 2>&1`,
      url: `http://127.0.0.1:${PORT}/lab`,
      timeout: 60_000,
      reuseExistingServer: !process.env.CI,
      // SIGTERM, not Playwright's default SIGKILL: Jupyter then exits cleanly and the llmops server
      // extension stops the MLflow UI / job runs it started in their own sessions.
      gracefulShutdown: { signal: 'SIGTERM', timeout: 15_000 }
    },
    {
      // Notebook 7 for tests/notebook7.spec.ts (plain Playwright, not Galata: Galata drives JupyterLab only).
      command: `jupyter notebook --config jupyter_notebook_test_config.py > jupyter-notebook${SUFFIX}.log 2>&1`,
      url: `http://127.0.0.1:${NB7_PORT}/tree`,
      timeout: 60_000,
      reuseExistingServer: !process.env.CI,
      gracefulShutdown: { signal: 'SIGTERM', timeout: 15_000 }
    }
  ]
};
