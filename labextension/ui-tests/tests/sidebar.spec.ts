/**
 * Browser tests of the LLMOps sidebar (JupyterLab 4 + the llmops_lab server extension).
 * Screenshots go to test-results/<test>/ (kept as CI artifacts).
 */
import { expect, test } from '@jupyterlab/galata';

import { code, openNotebook, openSidebar, shot, SIDEBAR_ID } from './helpers';

test.use({ viewport: { width: 1400, height: 900 } }); // screenshots at the size, default sidebar width

test.describe('LLMOps sidebar, smoke', () => {
  test('the icon is there and every section explains its empty state', async ({ page }, info) => {
    await expect(page.sidebar.getTabLocator(SIDEBAR_ID)).toBeVisible();
    const panel = await openSidebar(page);

    // No notebook open: the Runs tab says what to do instead of showing a blank box.
    await expect(panel.getByTestId('llmops-tab-runs')).toHaveAttribute('aria-selected', 'true');
    await expect(panel.getByTestId('llmops-no-notebook')).toContainText('Open a notebook');

    await panel.getByTestId('llmops-tab-prompts').click();
    await expect(panel.getByTestId('llmops-prompts-empty')).toContainText('No prompts registered yet');

    await panel.getByTestId('llmops-tab-jobs').click();
    await expect(panel.getByTestId('llmops-jobs-empty')).toContainText('No jobs yet');
    await expect(panel.getByTestId('llmops-error')).toHaveCount(0);
    await shot(page, info, 'sidebar-empty');
  });

  test('a new notebook has no runs yet, explained', async ({ page }, info) => {
    await page.notebook.createNew('empty.ipynb');
    const panel = await openSidebar(page);
    await panel.getByTestId('llmops-tab-runs').click();
    await expect(panel.getByTestId('llmops-notebook')).toContainText('empty.ipynb');
    await expect(panel.getByTestId('llmops-runs-empty')).toContainText('No runs yet');
    await expect(panel.getByTestId('llmops-header')).toContainText('Store: sqlite:');
    await expect(panel.getByTestId('llmops-start-mlflow')).toBeVisible();
    await shot(page, info, 'runs-empty');
  });
});

const CELLS = [
  code('%load_ext llmops_lab'),
  code('%%llm --name summarize --temperature 0 --max-tokens 32\nSummarize in one sentence: The cat sat on the mat all afternoon.'),
  code('%%llm --name summarize --temperature 0 --max-tokens 32\nSummarize in five words: The dog chased the ball across the park.')
];

test.describe('LLMOps sidebar, full scenario', () => {
  test.setTimeout(150_000);

  test('runs appear live, open, compare; a prompt goes back into the notebook', async ({ page, tmpPath }, info) => {
    await openNotebook(page, tmpPath, 'scenario.ipynb', CELLS);

    const panel = await openSidebar(page);
    await expect(panel.getByTestId('llmops-notebook')).toContainText('scenario.ipynb');
    await expect(panel.getByTestId('llmops-runs-empty')).toBeVisible();

    // 1. A %%llm cell on the embedded local model: its run shows up without a manual refresh.
    await page.notebook.runCell(0);
    await page.notebook.runCell(1);
    const rows = panel.getByTestId('llmops-run-row');
    await expect(rows).toHaveCount(1, { timeout: 30_000 });
    await expect(rows.first()).toContainText('summarize');
    await expect(rows.first()).toContainText('smollm2');
    await shot(page, info, '1-first-run');

    // 2. Open it: prompt, output, params, metrics, spans.
    await rows.first().click();
    const detail = panel.getByTestId('llmops-run-detail');
    await expect(detail).toBeVisible();
    await expect(panel.getByTestId('llmops-run-prompt')).toContainText('The cat sat on the mat');
    await expect(panel.getByTestId('llmops-run-output')).not.toHaveText('');
    await expect(panel.getByTestId('llmops-run-metrics')).toContainText('latency_ms');
    await shot(page, info, '2-run-detail');
    await panel.getByTestId('llmops-back').click();

    // 3. A second cell, then compare the two runs.
    await page.notebook.runCell(2);
    await expect(rows).toHaveCount(2, { timeout: 30_000 });
    await rows.nth(0).locator('.llmops-run-select').check();
    await rows.nth(1).locator('.llmops-run-select').check();
    const compare = panel.getByTestId('llmops-compare-button');
    await expect(compare).toBeEnabled();
    await compare.click();
    await expect(panel.getByTestId('llmops-compare-column')).toHaveCount(2);
    await expect(panel.getByTestId('llmops-worddiff').first()).toBeVisible();
    await expect(panel.getByTestId('llmops-compare-metrics')).toContainText('latency_ms');
    await shot(page, info, '3-compare');
    await panel.getByTestId('llmops-back').click();

    // 4. The prompt registry: two versions of "summarize", their diff, insert one as a cell.
    await panel.getByTestId('llmops-tab-prompts').click();
    const item = panel.locator('[data-testid="llmops-prompt-item"][data-prompt="summarize"]');
    await expect(item).toBeVisible();
    await item.click();
    await expect(panel.getByTestId('llmops-prompt-version')).toHaveCount(2);
    await panel.getByTestId('llmops-diff-button').click();
    await expect(panel.getByTestId('llmops-unidiff')).toContainText('five words');
    await shot(page, info, '4-prompt-diff');

    const cellsBefore = await page.notebook.getCellCount();
    await page.notebook.selectCells(2);
    await panel.locator('[data-testid="llmops-prompt-version"][data-version="1"]').getByTestId('llmops-insert-cell').click();
    await expect.poll(() => page.notebook.getCellCount()).toBe(cellsBefore + 1);
    const source = await page.evaluate(() => {
      // expose_app_in_browser: the cell model, without going through the clipboard
      const app = (window as any).jupyterapp;
      return app.shell.currentWidget.content.model.cells.get(3).sharedModel.getSource() as string;
    });
    expect(source.startsWith('%%llm --name summarize\n')).toBe(true);
    expect(source).toContain('The cat sat on the mat');
    await shot(page, info, '5-inserted-cell');
  });
});
