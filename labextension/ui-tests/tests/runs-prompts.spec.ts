/**
 * Browser test of the Runs and Prompts tabs beyond the basic scenario (issue #6): paging with "More…",
 * the MLflow UI started from the panel with a link to the open run, and prompt aliases (set one, see
 * it; an alias the server refuses shows the server's one-line reason). Screenshots in test-results/<test>/.
 */
import { expect, test } from '@jupyterlab/galata';

import { code, openNotebook, openSidebar, shot } from './helpers';

const PAGE_SIZE = 25; // labextension/src/runs.ts
const LOOP = 30; // one run first, then LOOP more: 31 runs, two pages

// Runs on the embedded local model with max_tokens=1 (≈ 0.1–0.3 s each here). Prompt "pager" gets two
// versions: v1 "Reply with one word.", v2 the numbered template.
const CELLS = [
  code(
    [
      'import llmops_lab',
      'first = llmops_lab.run("Reply with one word.", name="pager", max_tokens=1, temperature=0)',
      'assert llmops_lab.flush() == 0',
      'print("first run", first.run_id)'
    ].join('\n')
  ),
  code(
    [
      `for i in range(${LOOP}):`,
      '    last = llmops_lab.run("Reply with the number {{ n }}.", {"n": i}, name="pager", max_tokens=1, temperature=0)',
      'assert llmops_lab.flush() == 0',
      'print("loop done, last run", last.run_id)'
    ].join('\n')
  )
];

test('runs page with More…, the MLflow UI links to a run, prompt aliases', async ({ page, tmpPath }, info) => {
  test.setTimeout(150_000);
  await openNotebook(page, tmpPath, 'pager.ipynb', CELLS);

  const panel = await openSidebar(page);
  await page.sidebar.setWidth(480);
  await expect(panel.getByTestId('llmops-notebook')).toContainText('pager.ipynb');
  await expect(panel.getByTestId('llmops-runs-empty')).toBeVisible();
  const rows = panel.getByTestId('llmops-run-row');

  // 1. One run creates the store, then a loop of runs (the local model is CPU-bound: the MLflow UI is
  // started only afterwards, as its start-up takes both cores for ~10 s and made the loop 10× slower).
  await page.notebook.runCell(0);
  await expect(rows).toHaveCount(1, { timeout: 30_000 });
  await page.notebook.runCell(1);
  const output = (await page.notebook.getCellTextOutput(1))?.join('') ?? '';
  const lastRunId = output.match(/loop done, last run ([0-9a-f]{32})/)?.[1];
  expect(lastRunId, output).toBeTruthy();

  // 2. Start the MLflow UI with a run open: no link while it starts, then the open run gains its link in
  // place once the UI answers (the panel keeps polling the context meanwhile).
  await rows.first().click();
  await expect(panel.getByTestId('llmops-run-detail')).toBeVisible();
  await panel.getByTestId('llmops-start-mlflow').click();
  await expect(panel.getByTestId('llmops-mlflow-starting')).toBeVisible();
  await expect(panel.getByTestId('llmops-mlflow-run-link')).toHaveCount(0);
  await expect(panel.getByTestId('llmops-mlflow-run-link')).toBeVisible({ timeout: 60_000 });
  await panel.getByTestId('llmops-back').click();

  // 3. Paging: the first page (once it shows the newest run: the panel refreshed during the loop
  // too), then "More…" appends the rest, without duplicates.
  await expect(rows.first()).toHaveAttribute('data-run-id', lastRunId!, { timeout: 30_000 });
  await expect(rows).toHaveCount(PAGE_SIZE);
  await expect(panel.locator('.llmops-toolbar .llmops-muted').first()).toHaveText(`${PAGE_SIZE}+ runs`);
  const firstPage = await rows.evaluateAll(els => els.map(e => e.getAttribute('data-run-id')));
  await shot(page, info, '1-first-page');
  await panel.getByTestId('llmops-runs-more').click();
  await expect(rows).toHaveCount(LOOP + 1);
  await expect(panel.getByTestId('llmops-runs-more')).toHaveCount(0);
  await expect(panel.locator('.llmops-toolbar .llmops-muted').first()).toHaveText(`${LOOP + 1} runs`);
  const all = await rows.evaluateAll(els => els.map(e => e.getAttribute('data-run-id')));
  expect(new Set(all).size).toBe(LOOP + 1);
  expect(all.slice(0, PAGE_SIZE)).toEqual(firstPage); // newest first, the next page appended below
  // the oldest run (the first cell's, "Reply with one word.") is last
  await expect(rows.last()).toContainText('pager@1');
  await expect(rows.first()).toContainText('pager@2');
  // a live refresh may still replace the rows (new data): retry the scroll rather than race it
  await expect(async () => rows.last().scrollIntoViewIfNeeded({ timeout: 2_000 })).toPass({ timeout: 20_000 });
  await shot(page, info, '2-all-pages');
  const oldest = all[all.length - 1]!;

  // 4. Prompts: point "production" at v1 and see it on the version and in the list.
  await panel.getByTestId('llmops-tab-prompts').click();
  const item = panel.locator('[data-testid="llmops-prompt-item"][data-prompt="pager"]');
  await expect(item).toContainText('v2 · 2 version(s)');
  await expect(item.getByTestId('llmops-alias')).toHaveCount(0);
  await item.click();
  const v1 = panel.locator('[data-testid="llmops-prompt-version"][data-version="1"]');
  const v2 = panel.locator('[data-testid="llmops-prompt-version"][data-version="2"]');
  await expect(v1).toContainText('Reply with one word.');
  await panel.getByTestId('llmops-alias-name').fill('production');
  await panel.getByTestId('llmops-alias-version').selectOption('1');
  await panel.getByTestId('llmops-alias-set').click();
  await expect(v1.getByTestId('llmops-alias')).toHaveText(['production']);
  await expect(v2.getByTestId('llmops-alias')).toHaveCount(0);
  await shot(page, info, '3-alias-set');

  // an alias the browser lets through but the server refuses ("latest" is MLflow's own): its reason
  await panel.getByTestId('llmops-alias-name').fill('latest');
  await panel.getByTestId('llmops-alias-version').selectOption('2');
  await panel.getByTestId('llmops-alias-set').click();
  const dialog = page.locator('.jp-Dialog');
  await expect(dialog).toContainText('Set alias');
  await expect(dialog).toContainText("alias 'latest' is invalid: use letters, digits, '-' or '_' (not 'latest')");
  await shot(page, info, '4-alias-refused');
  await dialog.getByRole('button', { name: 'Close' }).click();
  await expect(dialog).toHaveCount(0);
  await expect(v2.getByTestId('llmops-alias')).toHaveCount(0);
  await panel.getByTestId('llmops-back').click();
  await expect(item.getByTestId('llmops-alias')).toHaveText(['production→v1']);

  // 5. The MLflow UI is up: the header links to it and a run opened now links to the run in it.
  // (the server's view first, so a failure says whether the UI died or is just slow to come up)
  const contextUrl = `/llmops-lab/api/context?notebook=${encodeURIComponent(`${tmpPath}/pager.ipynb`)}`;
  await expect
    .poll(async () => (await (await page.request.get(contextUrl)).json()).mlflow_ui, { timeout: 60_000 })
    .toMatchObject({ running: true, ready: true });
  const uiLink = panel.getByTestId('llmops-mlflow-link');
  await expect(uiLink).toBeVisible({ timeout: 10_000 }); // the panel polls the context while the UI starts
  const uiUrl = (await uiLink.getAttribute('href'))!;
  expect(uiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  await panel.getByTestId('llmops-tab-runs').click();
  await panel.locator(`[data-testid="llmops-run-row"][data-run-id="${oldest}"]`).click();
  await expect(panel.getByTestId('llmops-run-prompt')).toContainText('Reply with one word.');
  const runLink = panel.getByTestId('llmops-mlflow-run-link');
  await expect(runLink).toBeVisible();
  const href = (await runLink.getAttribute('href'))!;
  const m = href.match(/^(http:\/\/127\.0\.0\.1:\d+)\/#\/experiments\/(\d+)\/runs\/([0-9a-f]{32})$/);
  expect(m, href).not.toBeNull();
  expect(m![1]).toBe(uiUrl);
  expect(m![3]).toBe(oldest);
  await expect(runLink).toHaveAttribute('target', '_blank');
  // the UI answers, and serves this store: the run is there, in that experiment
  expect((await page.request.get(href)).status()).toBe(200);
  const got = await page.request.get(`${uiUrl}/api/2.0/mlflow/runs/get?run_id=${oldest}`);
  expect(got.status()).toBe(200);
  expect((await got.json()).run.info.experiment_id).toBe(m![2]);
  await shot(page, info, '5-mlflow-link');
});
