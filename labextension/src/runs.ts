/**
 * Runs of the active notebook's experiment: a paged, live table; a run's detail; a comparison.
 */
import { api, ICompare, IResultRows, IRunDetail, IRunRow, IRunsPage } from './api';
import { chatBadge, renderConversation } from './conversation';
import { diffStats, renderWordDiff } from './diff';
import { h, notice, replaceChildren } from './dom';
import { formatAge, formatLatency, formatMetric, formatScore, MISSING, runFacts, truncate } from './format';
import { PagedList, Selection } from './paging';
import { isSafeHttpUrl, mlflowRunUrl } from './query';
import { button, errorNotice, keyValueTable, Section } from './section';

const PAGE_SIZE = 25;

type View = { kind: 'list' } | { kind: 'detail'; runId: string } | { kind: 'compare'; runIds: string[] };

export class RunsSection extends Section {
  readonly runs = new PagedList<IRunRow>(r => r.run_id);
  readonly selection = new Selection(6);
  private shownSignature = '';

  constructor(host: ConstructorParameters<typeof Section>[0]) {
    super(host, 'runs');
  }

  get pollable(): boolean {
    return this.view.kind === 'list';
  }

  /** The newest listed run (to tell when a cell's run has arrived). */
  get newestRunId(): string | null {
    return this.runs.items[0]?.run_id ?? null;
  }

  notebookChanged(): void {
    this.runs.clear();
    this.selection.clear();
    this.view = { kind: 'list' };
    this.experiment = null;
    void this.refresh();
  }

  async refresh(quiet = false): Promise<void> {
    const view = this.view;
    if (view.kind === 'detail') {
      return this.loadDetail(view.runId);
    }
    if (view.kind === 'compare') {
      return this.loadCompare(view.runIds);
    }
    const notebook = this.host.notebook;
    if (!notebook) {
      replaceChildren(
        this.node,
        notice('empty', 'No active notebook', 'Open a notebook: its %%llm runs are listed here.', 'llmops-no-notebook')
      );
      return;
    }
    if (this.moreLoading) {
      // A refresh started now would supersede the "More…" request (guarded) and reset the list to the
      // rows shown before it: let the page arrive first, then reload that many rows.
      await this.moreLoading;
      if (this.view.kind !== 'list' || this.host.notebook !== notebook) {
        return;
      }
    }
    if (!quiet && !this.runs.items.length) {
      replaceChildren(this.node, notice('loading', 'Loading runs…'));
    }
    // A refresh reloads as many rows as are shown, so "more" pages survive the live updates.
    const size = Math.min(500, Math.max(PAGE_SIZE, this.runs.items.length));
    const result = await this.guarded(() => api.runs(notebook, null, size));
    if (result.ok) {
      this.applyPage(result.value, false);
    } else if (result.error !== undefined && !(quiet && this.runs.items.length)) {
      this.showError(result.error);
    }
  }

  private loadMore(): Promise<void> {
    const notebook = this.host.notebook;
    const token = this.runs.nextPageToken;
    if (!notebook || !token) {
      return Promise.resolve();
    }
    if (!this.moreLoading) {
      this.moreLoading = (async () => {
        const result = await this.guarded(() => api.runs(notebook, token, PAGE_SIZE));
        if (this.host.notebook !== notebook) {
          return; // another notebook meanwhile (its refresh waited for this request)
        }
        if (result.ok) {
          this.applyPage(result.value, true);
        } else if (result.error !== undefined) {
          this.showError(result.error);
        }
      })().finally(() => (this.moreLoading = null));
    }
    return this.moreLoading;
  }

  private applyPage(page: IRunsPage, append: boolean): void {
    this.experiment = page.experiment;
    const data = { items: page.runs ?? [], nextPageToken: page.next_page_token };
    if (append) {
      this.runs.append(data);
    } else {
      this.runs.reset(data);
    }
    this.selection.retain(this.runs.items.map(r => r.run_id));
    // Live polls mostly bring the same page: re-rendering it would replace every row under the user's
    // pointer (and under a click) once a second after a cell. Only a change of what a row shows re-renders.
    const signature = JSON.stringify([this.experiment, data.nextPageToken, this.runs.items,
      this.runs.items.map(r => formatAge(r.start_time))]);
    if (!append && signature === this.shownSignature && this.node.querySelector('[data-testid="llmops-runs-table"]')) {
      return;
    }
    this.shownSignature = signature;
    this.renderList();
  }

  private renderList(): void {
    const compareButton = button(`Compare (${this.selection.size})`, () => this.openCompare(), {
      testid: 'llmops-compare-button',
      disabled: this.selection.size < 2,
      title: 'Select two to six runs with the checkboxes'
    });
    const toolbar = h(
      'div',
      { class: 'llmops-toolbar' },
      h(
        'span',
        { class: 'llmops-muted', title: `Experiment: ${this.experiment ?? MISSING}` },
        `${this.runs.items.length}${this.runs.hasMore ? '+' : ''} run${this.runs.items.length === 1 ? '' : 's'}`
      ),
      h('span', { class: 'llmops-spacer' }),
      compareButton,
      button('Refresh', () => void this.refresh(), { testid: 'llmops-runs-refresh' })
    );
    if (!this.runs.items.length) {
      replaceChildren(
        this.node,
        toolbar,
        notice(
          'empty',
          'No runs yet',
          `Run a %%llm cell in this notebook: each run is logged to MLflow (experiment "${
            this.experiment ?? MISSING
          }") and shows up here within a few seconds.`,
          'llmops-runs-empty'
        )
      );
      return;
    }
    const list = h(
      'div',
      { class: 'llmops-runs', testid: 'llmops-runs-table', role: 'list' },
      ...this.runs.items.map(run => this.renderRow(run))
    );
    const more = this.runs.hasMore
      ? button('More…', () => void this.loadMore(), { testid: 'llmops-runs-more' })
      : null;
    replaceChildren(this.node, toolbar, list, more);
  }

  private renderRow(run: IRunRow): HTMLElement {
    const checkbox = h('input', {
      type: 'checkbox',
      class: 'llmops-run-select',
      title: 'Select for comparison',
      'aria-label': `Select run ${run.name}`,
      checked: this.selection.has(run.run_id),
      onclick: (e: Event) => e.stopPropagation(),
      onchange: () => {
        if (!this.selection.toggle(run.run_id)) {
          checkbox.checked = false;
        }
        this.renderList();
      }
    });
    const status = (run.status || '').toUpperCase();
    const facts = [...runFacts(run), run.score ? formatScore(run.score) : null].filter(f => f && f !== MISSING);
    return h(
      'div',
      {
        class: 'llmops-run-row',
        role: 'listitem',
        testid: 'llmops-run-row',
        'data-run-id': run.run_id,
        title: run.error ? `Error: ${run.error}` : 'Open this run',
        onclick: () => this.openDetail(run.run_id)
      },
      checkbox,
      h(
        'div',
        { class: 'llmops-run-main' },
        h(
          'div',
          { class: 'llmops-run-line' },
          h('span', { class: 'llmops-run-name' }, run.name || run.run_id),
          h('span', { class: 'llmops-run-kind' }, run.kind || ''),
          chatBadge(run),
          h('span', { class: 'llmops-spacer' }),
          h('span', { class: `llmops-status llmops-status-${status.toLowerCase()}` }, status || MISSING),
          h(
            'span',
            { class: 'llmops-muted', title: run.start_time ? new Date(run.start_time).toLocaleString() : '' },
            formatAge(run.start_time)
          )
        ),
        h('div', { class: 'llmops-run-facts llmops-muted', testid: 'llmops-run-facts' }, facts.join(' · ') || MISSING),
        run.error ? h('div', { class: 'llmops-run-error-line' }, truncate(run.error, 120)) : null
      )
    );
  }

  private openDetail(runId: string): void {
    this.view = { kind: 'detail', runId };
    void this.refresh();
  }

  private openCompare(): void {
    if (this.selection.size >= 2) {
      this.view = { kind: 'compare', runIds: this.selection.ids };
      void this.refresh();
    }
  }

  private back(): void {
    this.view = { kind: 'list' };
    this.renderList();
    void this.refresh(true);
  }

  private backBar(title: string): HTMLElement {
    return h(
      'div',
      { class: 'llmops-toolbar' },
      button('← Runs', () => this.back(), { testid: 'llmops-back' }),
      h('span', { class: 'llmops-view-title' }, title)
    );
  }

  private async loadDetail(runId: string): Promise<void> {
    replaceChildren(this.node, this.backBar('Run'), notice('loading', 'Loading run…'));
    const result = await this.guarded(() => api.run(runId, this.host.notebook));
    if (result.ok) {
      replaceChildren(this.node, this.backBar('Run'), this.renderDetail(result.value));
    } else if (result.error !== undefined) {
      replaceChildren(this.node, this.backBar('Run'), errorNotice(result.error));
    }
  }

  /** The MLflow UI came up (or went away) while a run is open: update its link in place. */
  contextChanged(): void {
    const slot = this.node.querySelector<HTMLElement>('.llmops-mlflow-slot');
    if (slot) {
      replaceChildren(slot, this.mlflowLink(slot.dataset.run ?? '', slot.dataset.experiment || null));
    }
  }

  private mlflowLink(runId: string, runExperimentId?: string | null): HTMLElement | null {
    const ctx = this.host.context;
    const url = ctx?.mlflow_ui?.url;
    const experimentId = runExperimentId || ctx?.experiment_id;
    if (!ctx?.mlflow_ui?.running || ctx.mlflow_ui.ready === false || !url || !experimentId || !isSafeHttpUrl(url)) {
      return null;
    }
    return h(
      'a',
      {
        class: 'llmops-link',
        testid: 'llmops-mlflow-run-link',
        href: mlflowRunUrl(url, experimentId, runId),
        target: '_blank',
        rel: 'noopener noreferrer'
      },
      'Open in MLflow UI ↗'
    );
  }

  private renderDetail(run: IRunDetail): HTMLElement {
    const summary = [run.kind, ...runFacts(run, 'tokens')].filter(f => f && f !== MISSING).join(' · ');
    const spans = run.spans ?? [];
    // A batch has one output per row (its results table); a comparison or a job has none of its own.
    const output =
      run.output_text !== null && run.output_text !== undefined
        ? [h('h4', null, 'Output'), h('pre', { class: 'llmops-pre', testid: 'llmops-run-output' }, run.output_text)]
        : run.results
          ? [h('h4', null, resultsTitle(run.results)), renderResults(run.results)]
          : run.kind === 'single' || !run.kind
            ? [h('h4', null, 'Output'), h('pre', { class: 'llmops-pre', testid: 'llmops-run-output' }, MISSING)]
            : [];
    return h(
      'div',
      { class: 'llmops-detail', testid: 'llmops-run-detail' },
      h('h3', { class: 'llmops-detail-title' }, run.name || run.run_id),
      h('div', { class: 'llmops-muted', testid: 'llmops-run-summary' }, [(run.status || '').toUpperCase(), summary].filter(Boolean).join(' · ')),
      h('div', { class: 'llmops-muted llmops-mono' }, run.run_id),
      h('div', { class: 'llmops-mlflow-slot', 'data-run': run.run_id, 'data-experiment': run.experiment_id ?? '' },
        this.mlflowLink(run.run_id, run.experiment_id)),
      run.error ? notice('error', 'The call failed', run.error, 'llmops-run-error') : null,
      run.conversation ? renderConversation(run.conversation, runId => this.openDetail(runId)) : null,
      h('h4', null, 'Prompt'),
      h('pre', { class: 'llmops-pre', testid: 'llmops-run-prompt' }, run.prompt_text ?? MISSING),
      ...output,
      h('h4', null, 'Parameters'),
      keyValueTable(run.params, 'llmops-run-params'),
      h('h4', null, 'Metrics'),
      keyValueTable(run.metrics, 'llmops-run-metrics', v => formatMetric(v as number)),
      h('h4', null, `Trace spans (${spans.length})`),
      spans.length
        ? h(
            'table',
            { class: 'llmops-table', testid: 'llmops-run-spans' },
            h('thead', null, h('tr', null, ...['Span', 'Type', 'Duration', 'Status'].map(t => h('th', null, t)))),
            h(
              'tbody',
              null,
              ...spans.map(s =>
                h(
                  'tr',
                  { title: truncate(JSON.stringify(s.attributes ?? {}), 400) },
                  h('td', null, s.name),
                  h('td', null, s.span_type || MISSING),
                  h('td', { class: 'llmops-num' }, formatLatency(s.end_ms - s.start_ms)),
                  h('td', null, s.status || MISSING)
                )
              )
            )
          )
        : h('div', { class: 'llmops-muted' }, 'No trace recorded for this run.')
    );
  }

  private async loadCompare(runIds: string[]): Promise<void> {
    const title = `Comparing ${runIds.length} runs`;
    replaceChildren(this.node, this.backBar(title), notice('loading', 'Comparing…'));
    const result = await this.guarded(() => api.compare(runIds, this.host.notebook));
    if (result.ok) {
      replaceChildren(this.node, this.backBar(title), renderComparison(result.value));
    } else if (result.error !== undefined) {
      replaceChildren(this.node, this.backBar(title), errorNotice(result.error));
    }
  }

  private view: View = { kind: 'list' };
  /** The "More…" request in flight (one at a time; refreshes wait for it). */
  private moreLoading: Promise<void> | null = null;
  private experiment: string | null = null;
}

function resultsTitle(results: IResultRows): string {
  const shown = results.rows.length;
  return shown < results.total ? `Results (first ${shown} of ${results.total} rows)` : `Results (${shown} row${shown === 1 ? '' : 's'})`;
}

/** A batch run's first result rows: inputs, output, scores (score columns right-aligned). */
export function renderResults(results: IResultRows): HTMLElement {
  const scores = new Set(results.score_columns ?? []);
  if (!results.rows.length) {
    return h('div', { class: 'llmops-muted', testid: 'llmops-run-results' }, 'No rows.');
  }
  return h(
    'div',
    { class: 'llmops-scroll llmops-results-scroll' },
    h(
      'table',
      { class: 'llmops-table llmops-results', testid: 'llmops-run-results' },
      h('thead', null, h('tr', null, ...results.columns.map(c => h('th', { class: scores.has(c) ? 'llmops-num' : '' }, c)))),
      h(
        'tbody',
        null,
        ...results.rows.map(row =>
          h(
            'tr',
            null,
            ...row.map((cell, i) =>
              h('td', { class: scores.has(results.columns[i]) ? 'llmops-num' : 'llmops-cell', title: cell }, truncate(cell, 160))
            )
          )
        )
      )
    )
  );
}

/** Outputs side by side (each against the baseline's word diff) and a metrics table. */
export function renderComparison(data: ICompare): HTMLElement {
  const runs = data.runs ?? [];
  const label = (run: IRunDetail, i: number) => `#${i + 1} ${run.name || run.run_id}`;
  const columns = runs.map((run, i) => {
    const isBaseline = run.run_id === data.baseline;
    const ops = data.diffs?.[run.run_id];
    const stats = diffStats(ops);
    return h(
      'div',
      { class: 'llmops-compare-column', testid: 'llmops-compare-column' },
      h('div', { class: 'llmops-compare-head', title: run.run_id }, label(run, i)),
      h('div', { class: 'llmops-muted' }, [run.model, run.prompt].filter(Boolean).join(' · ')),
      h(
        'div',
        { class: 'llmops-muted' },
        isBaseline ? 'baseline' : ops ? `+${stats.added} / −${stats.removed} words vs baseline` : ''
      ),
      isBaseline || !ops
        ? h('div', { class: 'llmops-worddiff' }, run.output_text ?? MISSING)
        : renderWordDiff(ops)
    );
  });
  const metricNames = data.metrics?.length
    ? data.metrics
    : [...new Set(runs.flatMap(r => Object.keys(r.metrics ?? {})))].sort();
  const metricsTable = h(
    'table',
    { class: 'llmops-table', testid: 'llmops-compare-metrics' },
    h('thead', null, h('tr', null, h('th', null, 'Metric'), ...runs.map((r, i) => h('th', { title: r.run_id }, label(r, i))))),
    h(
      'tbody',
      null,
      ...metricNames.map(m =>
        h('tr', null, h('th', null, m), ...runs.map(r => h('td', { class: 'llmops-num' }, formatMetric(r.metrics?.[m]))))
      )
    )
  );
  return h(
    'div',
    { class: 'llmops-compare', testid: 'llmops-compare' },
    h('h4', null, 'Outputs'),
    h('div', { class: 'llmops-compare-grid' }, ...columns),
    h('h4', null, 'Metrics'),
    h('div', { class: 'llmops-scroll' }, metricsTable)
  );
}
