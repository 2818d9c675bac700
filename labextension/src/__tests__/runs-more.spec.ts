/**
 * "More…" vs the live refresh: a poll that starts while the next page is loading must not drop it
 * (found by the browser test ui-tests/tests/runs-prompts.spec.ts, which failed intermittently).
 */
jest.mock('../api', () => ({ api: { runs: jest.fn() } }));

import { api, IRunRow, IRunsPage } from '../api';
import { IHost } from '../section';
import { RunsSection } from '../runs';

const row = (i: number): IRunRow => ({
  run_id: `run${String(i).padStart(3, '0')}`,
  name: `r${i}`,
  kind: 'call',
  status: 'FINISHED',
  start_time: 1_000_000 - i,
  model: 'local:smollm2-135m',
  prompt: 'p@1',
  latency_ms: 10,
  total_tokens: 3,
  cost_usd: 0,
  score: null,
  notebook: null,
  error: null
});
const ALL = Array.from({ length: 31 }, (_, i) => row(i));

/** The server: pages of `size` from `token` (an offset), like the real opaque token. */
function page(token: string | null, size: number): IRunsPage {
  const start = token ? Number(token) : 0;
  const runs = ALL.slice(start, start + size);
  const end = start + runs.length;
  return { experiment: 'e', experiment_id: '1', runs, next_page_token: end < ALL.length ? String(end) : null };
}

const host: IHost = {
  notebook: 'a.ipynb',
  context: null,
  insertCell: () => false,
  promote: async () => undefined,
  openPath: async () => undefined,
  openHtml: () => undefined
};

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>(r => (resolve = r));
  return { promise, resolve };
}

const runsMock = api.runs as unknown as jest.Mock;
const shown = (section: RunsSection) =>
  Array.from(section.node.querySelectorAll('[data-testid="llmops-run-row"]')).map(e => e.getAttribute('data-run-id'));
const moreButton = (section: RunsSection) =>
  section.node.querySelector('[data-testid="llmops-runs-more"]') as HTMLButtonElement | null;

describe('RunsSection paging', () => {
  beforeEach(() => runsMock.mockReset());

  it('keeps the "More…" page when a background refresh starts while it loads', async () => {
    runsMock.mockImplementation(async (_nb: string, token: string | null, size: number) => page(token, size));
    const section = new RunsSection(host);
    await section.refresh();
    expect(shown(section)).toHaveLength(25);

    // the next page answers slowly; a poll starts meanwhile
    const slow = deferred<IRunsPage>();
    runsMock.mockImplementationOnce(() => slow.promise);
    moreButton(section)!.click();
    const poll = section.refresh(true);
    slow.resolve(page('25', 25));
    await poll;

    expect(shown(section)).toEqual(ALL.map(r => r.run_id));
    expect(moreButton(section)).toBeNull();
    // the poll reloaded every row shown (31), not the first page only
    expect(runsMock.mock.calls[runsMock.mock.calls.length - 1]).toEqual(['a.ipynb', null, 31]);
  });

  it('asks for the next page once however often "More…" is clicked', async () => {
    runsMock.mockImplementation(async (_nb: string, token: string | null, size: number) => page(token, size));
    const section = new RunsSection(host);
    await section.refresh();
    const slow = deferred<IRunsPage>();
    runsMock.mockImplementationOnce(() => slow.promise);
    const more = moreButton(section)!;
    more.click();
    more.click();
    slow.resolve(page('25', 25));
    await section.refresh(true);
    expect(runsMock.mock.calls.filter(c => c[1] === '25')).toHaveLength(1);
    expect(shown(section)).toHaveLength(31);
  });
});
