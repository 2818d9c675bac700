/**
 * The LLMOps panel in Jupyter Notebook 7 (issue #6): plain Playwright against the `jupyter notebook`
 * server that playwright.config.js starts on LLMOPS_NB7_PORT (Galata's fixtures drive JupyterLab only).
 * In Notebook 7 the panel lives in the notebook page's left side panel, reached from
 * View → Left Sidebar → "Show LLMOps: runs, prompts and jobs" (the menu entry is named after the
 * panel's title caption). Screenshots in test-results/<test>/.
 */
import { expect, test } from '@playwright/test';

import { code, notebook } from './helpers';

const BASE = `http://127.0.0.1:${process.env.LLMOPS_NB7_PORT ?? '8900'}`;

// a kernelspec (notebook() has one), or Notebook 7 opens a "Select Kernel" dialog over the page
const NOTEBOOK = notebook([code('%load_ext llmops_lab')]);

test('Notebook 7: the LLMOps panel opens from the View menu and follows the notebook', async ({ page, request }, info) => {
  const name = `nb7-${Date.now()}.ipynb`;
  const put = await request.put(`${BASE}/api/contents/${name}`, { data: { type: 'notebook', content: NOTEBOOK } });
  expect(put.status()).toBe(201);

  await page.goto(`${BASE}/notebooks/${name}`);
  await expect(page.locator('.jp-Notebook .jp-Cell').first()).toBeVisible({ timeout: 30_000 });
  const panel = page.locator('#llmops-lab-sidebar');
  await expect(panel).toBeHidden(); // Notebook 7 starts with its side panels closed

  await page.getByRole('menuitem', { name: 'View' }).click();
  await page.locator('.lm-Menu-item', { hasText: 'Left Sidebar' }).hover();
  await page.locator('.lm-Menu-item', { hasText: 'Show LLMOps: runs, prompts and jobs' }).click();

  await expect(panel).toBeVisible();
  await expect(panel.getByTestId('llmops-tab-runs')).toHaveAttribute('aria-selected', 'true');
  // the notebook tracker works in Notebook 7: the panel reads this notebook's store and experiment
  await expect(panel.getByTestId('llmops-notebook')).toContainText(`Notebook: ${name}`);
  await expect(panel.getByTestId('llmops-header')).toContainText('Store: sqlite:');
  await expect(panel.getByTestId('llmops-runs-empty')).toContainText('No runs yet');
  await expect(panel.getByTestId('llmops-runs-empty')).toContainText('Run a %%llm cell in this notebook');
  await expect(panel.getByTestId('llmops-error')).toHaveCount(0);

  // the other sections answer too (the server extension is loaded by `jupyter notebook` as well)
  await panel.getByTestId('llmops-tab-jobs').click();
  await expect(panel.getByTestId('llmops-jobs-empty')).toContainText('No jobs yet');
  await expect(panel.getByTestId('llmops-promote')).toBeEnabled();
  await panel.getByTestId('llmops-tab-runs').click();
  await expect(panel.getByTestId('llmops-runs-empty')).toBeVisible();
  await page.screenshot({ path: info.outputPath('notebook7-panel.png') });
});
