/**
 * Browser test of the Jobs tab (issue #6): promote a tiny parameterised notebook with a live cron
 * preview ("Create job" disabled while the cron is invalid), create the job, a refused second job
 * reopens the dialog with what was typed, "Run now" (a real papermill execution in a child process of
 * the server), then its status, last metric, HTML report, executed notebook and history, and the job's
 * run in the Runs tab. At 1400×900 with the sidebar at its default width; screenshots in test-results/<test>/.
 */
import { expect, test } from '@jupyterlab/galata';

import { code, openNotebook, openSidebar, shot } from './helpers';

test.use({ viewport: { width: 1400, height: 900 } });

// A job notebook as small as it gets: a `parameters` cell and one metric that depends on it, so the test
// also sees that a parameter edited in the dialog reaches the execution (1 - 0.1 = 0.9, the default gives 0.5).
const CELLS = [
  code('threshold = 0.5\nlabel = "nightly"', ['parameters']),
  code('import llmops_lab\nllmops_lab.record("accuracy", 1 - threshold)')
];

test('promote a notebook into a job, with a live schedule preview, then run it now', async ({ page, tmpPath }, info) => {
  test.setTimeout(150_000);
  await openNotebook(page, tmpPath, 'nightly.ipynb', CELLS);

  const panel = await openSidebar(page);
  await expect(panel.getByTestId('llmops-notebook')).toContainText('nightly.ipynb');
  await panel.getByTestId('llmops-tab-jobs').click();
  await expect(panel.getByTestId('llmops-jobs-empty')).toContainText('No jobs yet');

  // 1. The dialog: the default schedule in words, then live as it is typed; a bad cron says why.
  await panel.getByTestId('llmops-promote').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Promote this notebook');
  const preview = dialog.getByTestId('llmops-promote-preview');
  const schedule = dialog.getByTestId('llmops-promote-schedule');
  await expect(dialog.getByTestId('llmops-promote-name')).toHaveValue('nightly');
  await expect(preview).toContainText('at 02:00, every day');
  await expect(preview).toContainText('Next:');

  const create = dialog.getByRole('button', { name: 'Create job' });
  await expect(create).toBeEnabled();
  await schedule.fill('61 2 * * *');
  await expect(preview.locator('.llmops-preview-error')).toContainText("schedule '61 2 * * *' is not a valid cron expression");
  await expect(preview).not.toContainText('Next:');
  // the preview says the cron is invalid: no job can be created from it (the button, and Enter)
  await expect(create).toBeDisabled();
  await schedule.press('Enter');
  await expect(dialog).toHaveCount(1);
  await shot(page, info, '1-promote-bad-cron');

  await schedule.fill('30 6 * * 1-5');
  await expect(preview).not.toContainText('not a valid cron');
  await expect(preview).toContainText('at 06:30');
  await expect(create).toBeEnabled();
  await schedule.fill('0 2 * * *');
  await expect(preview).toContainText('at 02:00, every day');
  await dialog.getByTestId('llmops-promote-timezone').fill('UTC');

  // the parameters come from the notebook's `parameters` cell, with their types
  const params = dialog.getByTestId('llmops-promote-params');
  await expect(params).toContainText('threshold (float)');
  await expect(params).toContainText('label (str)');
  await expect(params.locator('input[data-param="threshold"]')).toHaveValue('0.5');
  await expect(params.locator('input[data-param="label"]')).toHaveValue('nightly');
  await params.locator('input[data-param="threshold"]').fill('0.1');
  await shot(page, info, '2-promote-dialog');
  await dialog.getByRole('button', { name: 'Create job' }).click();
  await expect(dialog).toHaveCount(0);

  // 2. The job is listed with its schedule in words and its next run (02:00 UTC shown in local time).
  const row = panel.locator('[data-testid="llmops-job-row"][data-job="nightly"]');
  await expect(row).toBeVisible();
  await expect(row.getByTestId('llmops-job-notebook')).toContainText('nightly.ipynb');
  await expect(row.getByTestId('llmops-job-schedule')).toContainText('at 02:00, every day');
  const nextRun = await page.evaluate(() => {
    const d = new Date();
    const next = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate(), 2, 0, 0));
    if (next.getTime() <= d.getTime()) {
      next.setUTCDate(next.getUTCDate() + 1);
    }
    return next.toLocaleString();
  });
  await expect(row.getByTestId('llmops-job-next')).toHaveText(nextRun);
  await expect(row.locator('.llmops-status')).toHaveText('never run');
  await expect(row.getByTestId('llmops-job-report')).toHaveCount(0); // nothing ran yet
  await shot(page, info, '3-job-listed');

  // 2b. A job the server refuses (the name is taken): its reason, then the dialog again with what was typed.
  await panel.getByTestId('llmops-promote').click();
  await expect(dialog.getByTestId('llmops-promote-name')).toHaveValue('nightly');
  await schedule.fill('15 4 * * *');
  await expect(preview).toContainText('at 04:15');
  await params.locator('input[data-param="label"]').fill('weekly');
  const timezone = await dialog.getByTestId('llmops-promote-timezone').inputValue();
  await create.click();
  await expect(dialog).toContainText("job 'nightly' already exists");
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(dialog).toContainText('Promote this notebook');
  await expect(dialog.getByTestId('llmops-promote-name')).toHaveValue('nightly');
  await expect(schedule).toHaveValue('15 4 * * *');
  await expect(dialog.getByTestId('llmops-promote-timezone')).toHaveValue(timezone);
  await expect(params.locator('input[data-param="label"]')).toHaveValue('weekly');
  await shot(page, info, '3b-dialog-reopened-after-error');
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await expect(dialog).toHaveCount(0);

  // 3. Run now: running while papermill executes, then completed with the recorded metric.
  await row.getByTestId('llmops-job-run').click();
  await expect(row.locator('.llmops-status')).toHaveText('running', { timeout: 10_000 });
  await shot(page, info, '4-job-running');
  await expect(row.locator('.llmops-status')).toHaveText('completed', { timeout: 100_000 });
  await expect(row.getByTestId('llmops-job-metrics')).toHaveText(/^accuracy 0\.90*$/);
  await expect(panel.getByTestId('llmops-error')).toHaveCount(0);
  await shot(page, info, '5-job-completed');

  // 4. The files of the execution, from the hidden .llmops/jobs/nightly/: the HTML report opens in a
  // JupyterLab tab (a sandboxed frame), the executed notebook downloads (Jupyter hides .llmops/), the history lists it.
  await row.getByTestId('llmops-job-report').click();
  const tab = page.locator('.llmops-html-view');
  await expect(tab).toBeVisible();
  await expect(page.getByRole('tab', { name: 'nightly #1 report' })).toHaveAttribute('aria-selected', 'true');
  const frame = page.frameLocator('[data-testid="llmops-report-frame"]');
  await expect(frame.locator('body')).toContainText('Job nightly: completed', { timeout: 20_000 });
  await expect(frame.locator('body')).toContainText('accuracy');
  await expect(tab.locator('iframe')).toHaveAttribute('sandbox', '');
  await shot(page, info, '6-report-tab');

  const notebookLink = row.getByTestId('llmops-job-notebook-link');
  const href = (await notebookLink.getAttribute('href'))!;
  expect(href).toMatch(/\/llmops-lab\/api\/jobs\/nightly\/executions\/1\/notebook\?notebook=/);
  const executed = await page.request.get(href);
  expect(executed.status()).toBe(200);
  const nb = await executed.json();
  expect(JSON.stringify(nb.cells)).toContain('threshold = 0.1'); // papermill's injected parameters

  await row.getByTestId('llmops-job-history-toggle').click();
  const history = row.getByTestId('llmops-job-history');
  await expect(history.getByTestId('llmops-job-execution')).toHaveCount(1);
  const execution = history.getByTestId('llmops-job-execution').first();
  await expect(execution).toContainText('#1');
  await expect(execution.locator('.llmops-status')).toHaveText('completed');
  await expect(execution).toContainText('manual');
  await expect(execution).toContainText('accuracy 0.9');
  await expect(execution.getByTestId('llmops-job-report')).toBeVisible();
  await shot(page, info, '7-job-history-default-width');

  // 5. The job's MLflow run in the Runs tab: its metric, not "– · – tok · –".
  await panel.getByTestId('llmops-tab-runs').click();
  const jobRun = panel.getByTestId('llmops-run-row').filter({ hasText: 'job' }).first();
  await expect(jobRun).toBeVisible({ timeout: 30_000 });
  await expect(jobRun.getByTestId('llmops-run-facts')).toContainText('accuracy 0.9');
  await expect(jobRun.getByTestId('llmops-run-facts')).not.toContainText('tok');
  await shot(page, info, '8-job-run-in-runs');
});
