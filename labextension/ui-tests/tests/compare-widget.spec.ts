/**
 * Browser test of the comparison grid (issue #4): a real `llmops_lab.compare` on the embedded local
 * model, rendered by JupyterLab's ipywidgets manager in Chromium; then a variant (an inline template)
 * promoted from the grid under a typed name, seen in the sidebar's registry and inserted back as a
 * %%llm cell with its parameters (issue #8). At 1400×900; screenshots in test-results/<test>/.
 */
import { expect, test } from '@jupyterlab/galata';

import { code, openNotebook, openSidebar, shot } from './helpers';

test.use({ viewport: { width: 1400, height: 900 } });

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

  // promote the baseline (an inline template) under a name typed in the grid's name field
  const nameField = grid.locator('.widget-text').filter({ has: page.locator('label', { hasText: /^name$/ }) }).locator('input');
  await expect(nameField).toBeVisible();
  await nameField.fill('news-summary');
  await nameField.press('Tab'); // ipywidgets syncs a Text on change
  await grid.getByRole('button', { name: 'Promote' }).click();
  await expect(grid).toContainText('promoted [0] → news-summary@1 as production', { timeout: 30_000 });
  await grid.screenshot({ path: info.outputPath('3-promoted.png') });

  // the sidebar's registry has it, with the alias and the variant's parameters; inserted with them
  const panel = await openSidebar(page);
  await panel.getByTestId('llmops-tab-prompts').click();
  const item = panel.locator('[data-testid="llmops-prompt-item"][data-prompt="news-summary"]');
  await expect(item).toBeVisible({ timeout: 30_000 });
  await expect(item.getByTestId('llmops-alias')).toHaveText(['production→v1']);
  await item.click();
  const version = panel.locator('[data-testid="llmops-prompt-version"][data-version="1"]');
  await expect(version).toContainText('Summarize in one sentence: {{ text }}');
  await expect(version.getByTestId('llmops-version-params')).toContainText('temperature 0');
  await expect(version.getByTestId('llmops-version-params')).toContainText('max_tokens 24');
  const cellsBefore = await page.notebook.getCellCount();
  await page.notebook.selectCells(0);
  await version.getByTestId('llmops-insert-cell').click();
  await expect.poll(() => page.notebook.getCellCount()).toBe(cellsBefore + 1);
  const source = await page.evaluate(() => {
    const app = (window as any).jupyterapp;
    return app.shell.currentWidget.content.model.cells.get(1).sharedModel.getSource() as string;
  });
  expect(source).toMatch(/^%%llm \S+:\S+ --name news-summary --temperature 0 --max-tokens 24\n/);
  expect(source.endsWith('\nSummarize in one sentence: {{ text }}')).toBe(true);
  await shot(page, info, '4-promoted-in-sidebar');
});
