/**
 * What the browser tests share: notebooks built in code, opening one in JupyterLab, the sidebar.
 */
import { expect, IJupyterLabPageFixture } from '@jupyterlab/galata';
import type { TestInfo } from '@playwright/test';

export const SIDEBAR_ID = 'llmops-lab-sidebar';

/** A code cell; `tags: ['parameters']` makes it papermill's parameters cell. */
export function code(source: string | string[], tags: string[] = []) {
  return {
    cell_type: 'code',
    metadata: tags.length ? { tags } : {},
    outputs: [],
    execution_count: null,
    source: Array.isArray(source) ? source.join('\n') : source
  };
}

/** An nbformat 4 notebook with a Python kernelspec (without one, Notebook 7 asks for a kernel first). */
export function notebook(cells: ReturnType<typeof code>[]) {
  return {
    cells,
    metadata: {
      kernelspec: { display_name: 'Python 3 (ipykernel)', language: 'python', name: 'python3' },
      language_info: { name: 'python' }
    },
    nbformat: 4,
    nbformat_minor: 5
  };
}

/**
 * Upload `cells` as `<tmpPath>/<name>` and make it the active notebook. An empty `llmops.toml` next to it makes
 * the test's folder its own llmops project (store, jobs): a marker in a folder above Galata's temporary root
 * (e.g. a stray /tmp/llmops.toml) would otherwise make every test, and every run, share one store.
 */
export async function openNotebook(
  page: IJupyterLabPageFixture,
  tmpPath: string,
  name: string,
  cells: ReturnType<typeof code>[]
): Promise<void> {
  const path = `${tmpPath}/${name}`;
  await page.contents.uploadContent('', 'text', `${tmpPath}/llmops.toml`);
  await page.contents.uploadContent(JSON.stringify(notebook(cells)), 'text', path);
  await page.notebook.openByPath(path);
  await page.notebook.activate(name);
}

export async function openSidebar(page: IJupyterLabPageFixture) {
  await page.sidebar.openTab(SIDEBAR_ID);
  const panel = page.locator(`#${SIDEBAR_ID}`);
  await expect(panel).toBeVisible();
  return panel;
}

export async function shot(page: IJupyterLabPageFixture, info: TestInfo, name: string) {
  await page.screenshot({ path: info.outputPath(`${name}.png`) });
}
