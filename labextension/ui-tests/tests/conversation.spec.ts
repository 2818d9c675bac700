/**
 * Browser test of a conversation in the panel (issue #18), at 1400×900 with the sidebar at its default width:
 * the runs list marks each turn with a chat badge and its number; a turn's detail has a "Conversation NAME"
 * section listing the turns in order, the shown one highlighted, each opening its run. Screenshots in
 * test-results/<test>/ (and in $LLMOPS_SHOTS when set).
 */
import { expect, IJupyterLabPageFixture, test } from '@jupyterlab/galata';
import type { TestInfo } from '@playwright/test';

import { code, openNotebook, openSidebar, shot } from './helpers';

test.use({ viewport: { width: 1400, height: 900 } });

// The embedded local model, a few tokens per turn; a run that is no turn beside them.
const CELLS = [
  code([
    'import llmops_lab',
    'chat = llmops_lab.Conversation("support-bot", system="Answer in a few words.")',
    'for question in ["My parcel A-17 has not arrived and the tracking page shows nothing at all since Monday.",',
    '                 "What should I do now?", "Thanks. Can you summarise?"]:',
    '    chat.send(question, max_tokens=12, temperature=0)',
    'lone = llmops_lab.run("Reply with one word.", name="lone", max_tokens=2, temperature=0)',
    'assert llmops_lab.flush() == 0',
    'print("conversation done", len(chat))'
  ])
];

async function saveShot(page: IJupyterLabPageFixture, info: TestInfo, name: string) {
  await shot(page, info, name);
  if (process.env.LLMOPS_SHOTS) {
    await page.screenshot({ path: `${process.env.LLMOPS_SHOTS}/${name}.png` });
  }
}

test('a conversation: chat badges in the list, its turns in order in a turn\'s detail', async ({ page, tmpPath }, info) => {
  test.setTimeout(240_000);
  await openNotebook(page, tmpPath, 'chat.ipynb', CELLS);
  const panel = await openSidebar(page); // the default sidebar width: never widened here
  await page.notebook.runCell(0);
  expect((await page.notebook.getCellTextOutput(0))?.join('') ?? '').toContain('conversation done 3');

  // the list: three turns with their badges, the lone run without one
  const rows = panel.getByTestId('llmops-run-row');
  await expect(rows).toHaveCount(4, { timeout: 40_000 });
  const badges = panel.getByTestId('llmops-chat-badge');
  await expect(badges).toHaveText(['chat #3', 'chat #2', 'chat #1']); // newest first
  await expect(badges.first()).toHaveAttribute('title', 'Conversation support-bot, turn 3');
  await expect(rows.filter({ hasText: 'lone' }).getByTestId('llmops-chat-badge')).toHaveCount(0);
  // nothing overflows the sidebar sideways
  const fits = (el: Element) => el.scrollWidth <= el.clientWidth + 1;
  expect(await panel.evaluate(fits)).toBe(true);
  for (const badge of await badges.all()) {
    const box = (await badge.boundingBox())!;
    const row = (await badge.locator('xpath=ancestor::*[@data-testid="llmops-run-row"]').boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(row.x + row.width + 1);
  }
  await saveShot(page, info, 'conversation-1-runs-list');

  // turn 2's detail: the conversation's turns in order, turn 2 highlighted
  await rows.filter({ has: page.getByTestId('llmops-chat-badge').getByText('chat #2', { exact: true }) }).click();
  const section = panel.getByTestId('llmops-conversation');
  await expect(section).toBeVisible();
  await expect(section.locator('h4')).toHaveText('Conversation support-bot');
  await expect(section).toContainText('3 turns');
  const turns = section.getByTestId('llmops-turn');
  await expect(turns).toHaveCount(3);
  await expect(turns.locator('.llmops-turn-label')).toHaveText(['Turn 1', 'Turn 2', 'Turn 3']);
  await expect(turns.nth(0)).toContainText('user: My parcel A-17 has not arrived');
  await expect(turns.nth(2)).toContainText('user: Thanks. Can you summarise?');
  await expect(turns.nth(1)).toHaveAttribute('aria-current', 'true');
  await expect(section.locator('[aria-current="true"]')).toHaveCount(1);
  const second = await turns.nth(1).getAttribute('data-run-id');
  await expect(panel.getByTestId('llmops-run-detail')).toContainText(second!);
  expect(await panel.evaluate(fits)).toBe(true);
  expect(await section.evaluate(fits)).toBe(true);
  await saveShot(page, info, 'conversation-2-turn-detail');

  // clicking turn 3 opens its run, where turn 3 is the highlighted one
  const third = await turns.nth(2).getAttribute('data-run-id');
  await turns.nth(2).click();
  await expect(panel.locator('[data-testid="llmops-turn"][aria-current="true"]')).toHaveAttribute('data-run-id', third!);
  await expect(panel.getByTestId('llmops-run-detail')).toContainText(third!);
  await saveShot(page, info, 'conversation-3-after-click');
  await panel.getByTestId('llmops-back').click();
  await expect(rows).toHaveCount(4);
});
