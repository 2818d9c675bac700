/**
 * Browser test of the comparison grid (issue #4): a real `llmops_lab.compare` on the embedded local
 * model, rendered by JupyterLab's ipywidgets manager in Chromium. Screenshots in test-results/<test>/.
 */
import { expect, test } from '@jupyterlab/galata';

import { code, openNotebook } from './helpers';

const CELLS = [
  code([
    'import pandas as pd, llmops_lab',
    'news = pd.DataFrame({"text": ["The council approved a new park downtown.",',
    '                              "Heavy rain delayed trains across the region.",',
    '                              "The team won the final after extra time."]})',
    'cmp = llmops_lab.compare(["Summarize in one sentence: {{ text }}", "Give a three-word title for: {{ text }}"],',
    '                         data=news, params={"temperature": 0, "max_tokens": 24}, logprobs=True,',
    '                         top_logprobs=3, name="news-title")',
    'cmp'
  ])
];

test('the comparison grid renders, filters, pages and shades tokens', async ({ page, tmpPath }, info) => {
  test.setTimeout(150_000);
  await openNotebook(page, tmpPath, 'compare.ipynb', CELLS);
  await page.notebook.runCell(0);

  const grid = page.locator('.llmops-cmp');
  await expect(grid).toBeVisible({ timeout: 60_000 });
  // header: one column per variant, the first marked as the baseline
  await expect(grid).toContainText('(baseline)');
  await expect(grid).toContainText('[1]');
  await expect(grid).toContainText('p50 latency');
  // one line per data row, the second variant's cells diffed against the baseline
  await expect(grid).toContainText('page 1/1 · 3 of 3 rows');
  await expect(grid.locator('ins, del').first()).toBeVisible();
  await grid.screenshot({ path: info.outputPath('1-grid.png') });

  // the view follows its state: shading by token probability (logprobs were requested)
  await grid.getByText('shade tokens by probability').click();
  await expect(grid.locator('span[title]').first()).toBeVisible();
  await grid.screenshot({ path: info.outputPath('2-shaded.png') });

  // the failures filter hides every row (no call failed and no scorer ran)
  await grid.getByText('only failures').click();
  await expect(grid).toContainText('no rows match the filters');
  await expect(grid).toContainText('0 of 3 rows');
});
