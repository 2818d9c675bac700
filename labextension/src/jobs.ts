/**
 * Scheduled notebook jobs: list, status, next run, last metrics; "Run now"; "Promote this notebook…".
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { api, IExecution, IJob, IPreview } from './api';
import { h, notice, replaceChildren } from './dom';
import { formatLatency, formatMetric, MISSING } from './format';
import { changedParameters, formatParamValue, IParameter, parseParamValue, ParamValue } from './params';
import { ApiError } from './errors';
import { button, errorNotice, IHost, Section } from './section';

export class JobsSection extends Section {
  constructor(host: IHost) {
    super(host, 'jobs');
  }

  get pollable(): boolean {
    return true;
  }

  notebookChanged(): void {
    this.expanded.clear();
    this.histories.clear();
    this.jobs = null;
    void this.refresh();
  }

  async refresh(quiet = false): Promise<void> {
    if (!quiet && !this.node.firstChild) {
      replaceChildren(this.node, notice('loading', 'Loading jobs…'));
    }
    const result = await this.guarded(() => api.jobs(this.host.notebook));
    if (result.ok) {
      this.render(result.value.jobs ?? []);
    } else if (result.error !== undefined && !quiet) {
      this.showError(result.error);
    }
  }

  private render(jobs: IJob[]): void {
    this.jobs = jobs;
    const toolbar = h(
      'div',
      { class: 'llmops-toolbar' },
      button('Promote this notebook…', () => void this.host.promote(), {
        testid: 'llmops-promote',
        disabled: !this.host.notebook,
        title: this.host.notebook ? `Schedule ${this.host.notebook} as a job` : 'Open a notebook first'
      }),
      h('span', { class: 'llmops-spacer' }),
      button('Refresh', () => void this.refresh(), { testid: 'llmops-jobs-refresh' })
    );
    if (!jobs.length) {
      replaceChildren(
        this.node,
        toolbar,
        notice(
          'empty',
          'No jobs yet',
          'Promote a notebook to run it on a schedule (papermill), with a report and an MLflow run per execution.',
          'llmops-jobs-empty'
        )
      );
      return;
    }
    // One card per job (not a table): a sidebar is narrow, and seven columns would scroll sideways.
    const list = h('div', { class: 'llmops-job-list', testid: 'llmops-jobs-table' }, ...jobs.map(job => this.renderJob(job)));
    replaceChildren(this.node, toolbar, list);
  }

  private renderJob(job: IJob): HTMLElement {
    const metrics = job.score
      ? `${job.score[0]} ${formatMetric(job.score[1])}`
      : Object.entries(job.last_metrics ?? {})
          .slice(0, 3)
          .map(([k, v]) => `${k} ${formatMetric(v)}`)
          .join(', ') || MISSING;
    const status = job.running ? 'running' : (job.last_status ?? 'never run').toLowerCase();
    const runNow = button(
      'Run now',
      async () => {
        try {
          await api.runJob(job.name, this.host.notebook);
          await this.refresh(true);
        } catch (error) {
          await showErrorMessage(`Run ${job.name}`, error instanceof Error ? error.message : String(error));
        }
      },
      { testid: 'llmops-job-run' }
    );
    return h(
      'div',
      { class: 'llmops-job-row', testid: 'llmops-job-row', 'data-job': job.name },
      h(
        'div',
        { class: 'llmops-run-line' },
        h('span', { class: 'llmops-run-name' }, job.name),
        h('span', { class: `llmops-status llmops-status-${status}`, title: job.last_started ?? '' }, status),
        h('span', { class: 'llmops-spacer' }),
        runNow
      ),
      h(
        'div',
        { class: 'llmops-job-meta' },
        h('span', { testid: 'llmops-job-notebook', title: job.notebook }, job.notebook),
        ' · ',
        h('span', { testid: 'llmops-job-schedule', title: job.schedule ?? '' }, job.schedule_text || job.schedule || 'manual')
      ),
      h(
        'div',
        { class: 'llmops-job-meta' },
        'Next: ',
        h('span', { testid: 'llmops-job-next' }, job.next_run ? new Date(job.next_run).toLocaleString() : MISSING),
        ' · ',
        h('span', { testid: 'llmops-job-metrics' }, metrics)
      ),
      this.renderLinks(job, job.last_execution ?? null, 'last'),
      this.renderHistory(job)
    );
  }

  /** Report · Notebook · History of a job's execution (the files sit in the hidden .llmops/jobs/NAME/). */
  private renderLinks(job: IJob, ex: IExecution | null, where: 'last' | 'history'): HTMLElement | null {
    if (!ex && where === 'history') {
      return null;
    }
    const links: (HTMLElement | string)[] = [];
    const sep = () => (links.length ? links.push(' · ') : 0);
    if (ex?.report) {
      sep();
      links.push(
        linkButton('Report', () => void this.openReport(job.name, ex), {
          testid: 'llmops-job-report',
          title: `The HTML report of execution ${ex.id} (${ex.status}), opened in JupyterLab`
        })
      );
    }
    if (ex?.has_output) {
      sep();
      if (ex.output_path && ex.output_openable) {
        const path = ex.output_path;
        links.push(
          linkButton('Notebook', () => void this.openNotebook(path), {
            testid: 'llmops-job-notebook-link',
            title: `Open the executed notebook ${path}`
          })
        );
      } else {
        // Jupyter does not open files in hidden folders (.llmops/) unless ContentsManager.allow_hidden is set.
        links.push(
          h(
            'a',
            {
              class: 'llmops-link',
              testid: 'llmops-job-notebook-link',
              href: api.jobNotebookUrl(job.name, ex.id, this.host.notebook),
              download: `${job.name}-${ex.id}.ipynb`,
              title:
                'Download the executed notebook (it is in the hidden .llmops/ folder, which Jupyter does not open ' +
                'unless started with --ContentsManager.allow_hidden=True)'
            },
            'Notebook ⤓'
          )
        );
      }
    }
    if (where === 'last') {
      sep();
      const open = this.expanded.has(job.name);
      links.push(
        linkButton(open ? 'Hide history' : 'History', () => this.toggleHistory(job.name), {
          testid: 'llmops-job-history-toggle',
          'aria-expanded': String(open),
          title: 'Past executions of this job'
        })
      );
    }
    if (!links.length) {
      return null;
    }
    return h('div', { class: 'llmops-job-links' }, ...links);
  }

  private renderHistory(job: IJob): HTMLElement | null {
    if (!this.expanded.has(job.name)) {
      return null;
    }
    const node = h('div', { class: 'llmops-job-history', testid: 'llmops-job-history', 'data-job': job.name });
    const cached = this.histories.get(job.name);
    if (cached) {
      this.fillHistory(node, job, cached);
    } else {
      replaceChildren(node, h('div', { class: 'llmops-muted' }, 'Loading history…'));
    }
    void this.loadHistory(job, node);
    return node;
  }

  private async loadHistory(job: IJob, node: HTMLElement): Promise<void> {
    try {
      const answer = await api.jobHistory(job.name, this.host.notebook);
      this.histories.set(job.name, answer.executions ?? []);
      if (node.isConnected) {
        this.fillHistory(node, job, answer.executions ?? []);
      }
    } catch (error) {
      if (node.isConnected && !this.histories.has(job.name)) {
        replaceChildren(node, errorNotice(error));
      }
    }
  }

  private fillHistory(node: HTMLElement, job: IJob, executions: IExecution[]): void {
    if (!executions.length) {
      replaceChildren(node, h('div', { class: 'llmops-muted' }, 'Never run yet.'));
      return;
    }
    replaceChildren(
      node,
      ...executions.map(ex => {
        const status = ex.status.toLowerCase();
        const metrics = Object.entries(ex.metrics ?? {})
          .slice(0, 2)
          .map(([k, v]) => `${k} ${formatMetric(v)}`)
          .join(', ');
        return h(
          'div',
          { class: 'llmops-execution', testid: 'llmops-job-execution', 'data-execution': String(ex.id) },
          h(
            'div',
            { class: 'llmops-run-line' },
            h('span', { class: 'llmops-muted', title: ex.started_at ?? '' }, `#${ex.id} ${ex.started_at ? new Date(ex.started_at).toLocaleString() : MISSING}`),
            h('span', { class: 'llmops-spacer' }),
            h('span', { class: `llmops-status llmops-status-${status}` }, status)
          ),
          h(
            'div',
            { class: 'llmops-job-meta' },
            [ex.trigger, ex.duration_s !== null ? formatLatency(ex.duration_s * 1000) : null, metrics || null]
              .filter(Boolean)
              .join(' · ')
          ),
          ex.error ? h('div', { class: 'llmops-run-error-line', title: ex.error }, ex.error) : null,
          this.renderLinks(job, ex, 'history')
        );
      })
    );
  }

  private toggleHistory(name: string): void {
    if (this.expanded.has(name)) {
      this.expanded.delete(name);
    } else {
      this.expanded.add(name);
    }
    if (this.jobs) {
      this.render(this.jobs);
    }
  }

  private async openReport(name: string, ex: IExecution): Promise<void> {
    try {
      const html = await api.jobReport(name, ex.id, this.host.notebook);
      this.host.openHtml(`${name} #${ex.id} report`, html);
    } catch (error) {
      await showErrorMessage(`Report of ${name}`, error instanceof Error ? error.message : String(error));
    }
  }

  private async openNotebook(path: string): Promise<void> {
    try {
      await this.host.openPath(path);
    } catch (error) {
      await showErrorMessage('Executed notebook', error instanceof Error ? error.message : String(error));
    }
  }

  private jobs: IJob[] | null = null;
  private readonly expanded = new Set<string>();
  private readonly histories = new Map<string, IExecution[]>();
}

/** A button that reads as a link (an action inside JupyterLab, not a navigation). */
function linkButton(label: string, onClick: () => void, attrs: Record<string, string> = {}): HTMLButtonElement {
  return h('button', { class: 'llmops-linkbutton', type: 'button', ...attrs, onclick: () => onClick() }, label);
}

/** What was typed in the dialog, to reopen it as it was (after the server refused the job). */
export interface IPromoteDraft {
  name: string;
  schedule: string;
  timezone: string;
  parameters: Record<string, string>;
}

/** The body of the "Promote this notebook…" dialog: name, schedule with a live preview, parameters. */
export class PromoteForm extends Widget {
  /**
   * `localParameters`: parsed from the open notebook, shown until (or if) the server's preview answers.
   * `draft`: the values typed last time (the dialog reopened after an error).
   * While the preview says the schedule is invalid (or a field is), the dialog's "Create job" is disabled:
   * the form marks itself `.jp-mod-error` / `:invalid`, which JupyterLab's Dialog checks on each input event.
   */
  constructor(
    readonly notebook: string,
    private readonly localParameters: Record<string, IParameter> = {},
    private readonly draft: IPromoteDraft | null = null
  ) {
    super();
    this.addClass('llmops-promote');
    const base = notebook.split('/').pop() ?? notebook;
    this.nameInput = h('input', {
      class: 'llmops-input',
      testid: 'llmops-promote-name',
      'aria-label': 'Job name',
      required: true,
      pattern: '[A-Za-z0-9_\\-]{1,100}',
      title: 'Letters, digits, "_" and "-"',
      value: draft?.name ?? base.replace(/\.ipynb$/, '').replace(/[^\w-]+/g, '-')
    });
    this.scheduleInput = h('input', {
      class: 'llmops-input',
      testid: 'llmops-promote-schedule',
      'aria-label': 'Schedule',
      placeholder: 'cron, e.g. 0 2 * * *  (empty: run manually)',
      value: draft?.schedule ?? '0 2 * * *',
      oninput: () => this.schedulePreview()
    });
    this.timezoneInput = h('input', {
      class: 'llmops-input',
      testid: 'llmops-promote-timezone',
      'aria-label': 'Time zone',
      placeholder: 'IANA time zone, e.g. Europe/Paris (empty: UTC)',
      value: draft?.timezone ?? browserTimezone(),
      oninput: () => this.schedulePreview()
    });
    this.previewNode = h('div', { class: 'llmops-preview', testid: 'llmops-promote-preview', 'aria-live': 'polite' });
    this.paramsNode = h('div', { class: 'llmops-params', testid: 'llmops-promote-params' });
    this.node.append(
      h('label', { class: 'llmops-field' }, 'Name', this.nameInput),
      h('label', { class: 'llmops-field' }, 'Schedule', this.scheduleInput),
      h('label', { class: 'llmops-field' }, 'Time zone', this.timezoneInput),
      this.previewNode,
      h('div', { class: 'llmops-field-title' }, 'Parameters (from the notebook’s parameters cell)'),
      this.paramsNode
    );
    void this.loadPreview();
  }

  /** Whether the live preview last said the schedule or time zone is invalid (or has not answered yet). */
  get previewInvalid(): boolean {
    return this.previewError !== null;
  }

  /** What is typed now, to reopen the dialog with it. */
  getDraft(): IPromoteDraft {
    const parameters: Record<string, string> = { ...(this.draft?.parameters ?? {}) };
    for (const [key, input] of Object.entries(this.paramInputs)) {
      parameters[key] = input.value;
    }
    return {
      name: this.nameInput.value,
      schedule: this.scheduleInput.value,
      timezone: this.timezoneInput.value,
      parameters
    };
  }

  /** The POST body, or the one-line reason it cannot be built (the dialog must not throw). */
  getValue(): IPromoteValue {
    if (this.previewError !== null) {
      return { error: this.previewError };
    }
    const name = this.nameInput.value.trim();
    if (!name) {
      return { error: 'Give the job a name.' };
    }
    const edited: Record<string, string> = {};
    for (const [key, input] of Object.entries(this.paramInputs)) {
      edited[key] = input.value;
    }
    let parameters: Record<string, ParamValue>;
    try {
      parameters = changedParameters(this.parameters, edited);
    } catch (error) {
      return { error: error instanceof Error ? error.message : String(error) };
    }
    const schedule = this.scheduleInput.value.trim();
    const timezone = this.timezoneInput.value.trim();
    return {
      body: {
        notebook: this.notebook,
        name,
        ...(schedule ? { schedule } : {}),
        ...(schedule && timezone ? { timezone } : {}),
        ...(Object.keys(parameters).length ? { parameters } : {})
      }
    };
  }

  private schedulePreview(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.loadPreview(), 300);
  }

  private async loadPreview(): Promise<void> {
    const schedule = this.scheduleInput.value.trim();
    const seq = ++this.seq;
    let preview: IPreview;
    try {
      preview = await api.preview(this.notebook, schedule || null, this.timezoneInput.value.trim() || null);
    } catch (error) {
      if (!this.paramsLoaded && Object.keys(this.localParameters).length) {
        this.renderParameters(this.localParameters);
      }
      if (seq === this.seq) {
        const message = error instanceof Error ? error.message : String(error);
        replaceChildren(this.previewNode, h('span', { class: 'llmops-preview-error' }, message));
        // the server refused the schedule (400) or time zone: no job can be created from it
        this.setPreviewError(error instanceof ApiError && error.kind !== 'user' ? null : message, message);
      }
      return;
    }
    if (seq !== this.seq) {
      return;
    }
    this.setPreviewError(null);
    const next = (preview.next_runs ?? []).slice(0, 3).map(t => new Date(t).toLocaleString());
    replaceChildren(
      this.previewNode,
      h('div', null, preview.schedule_text || (schedule ? schedule : 'Runs only when started (no schedule)')),
      next.length ? h('div', { class: 'llmops-muted' }, `Next: ${next.join(' · ')}`) : null
    );
    if (!this.paramsLoaded) {
      this.paramsLoaded = true;
      const server = preview.parameters ?? {};
      this.renderParameters(Object.keys(server).length ? server : this.localParameters);
    }
  }

  /**
   * Marks the form invalid (or valid again) and has the Dialog re-check: it disables "Create job" while
   * an element of its body is `.jp-mod-error` or `:invalid`, and refuses Enter then too.
   */
  private setPreviewError(error: string | null, field = error): void {
    this.previewError = error;
    const lower = (field ?? '').toLowerCase();
    const timezone = error !== null && /time ?zone/.test(lower) && !/schedule|cron/.test(lower);
    this.scheduleInput.setCustomValidity(error !== null && !timezone ? error : '');
    this.timezoneInput.setCustomValidity(timezone ? error! : '');
    this.previewNode.classList.toggle('jp-mod-error', error !== null);
    this.revalidate();
  }

  /** JupyterLab's Dialog checks validity on `input` events of its body: send one after an async change. */
  private revalidate(): void {
    this.node.dispatchEvent(new Event('input', { bubbles: true }));
  }

  private renderParameters(parameters: Record<string, IParameter>): void {
    this.parameters = parameters;
    this.paramInputs = {};
    const names = Object.keys(parameters);
    if (!names.length) {
      replaceChildren(
        this.paramsNode,
        h('div', { class: 'llmops-muted' }, 'No parameters cell (a cell tagged "parameters"): the job runs the notebook as is.')
      );
      return;
    }
    replaceChildren(
      this.paramsNode,
      ...names.map(name => {
        const input = h('input', {
          class: 'llmops-input',
          'data-param': name,
          'aria-label': name,
          value: this.draft?.parameters?.[name] ?? formatParamValue(parameters[name].value)
        });
        // a value that is not of the parameter's type marks the input invalid (and disables "Create job")
        const check = () => {
          try {
            parseParamValue(name, input.value, parameters[name].type);
            input.setCustomValidity('');
          } catch (error) {
            input.setCustomValidity(error instanceof Error ? error.message : String(error));
          }
          input.title = input.validationMessage;
        };
        input.addEventListener('input', check);
        check();
        this.paramInputs[name] = input;
        return h('label', { class: 'llmops-field' }, `${name} (${parameters[name].type})`, input);
      })
    );
    this.revalidate();
  }

  private readonly nameInput: HTMLInputElement;
  private readonly scheduleInput: HTMLInputElement;
  private readonly timezoneInput: HTMLInputElement;
  private readonly previewNode: HTMLElement;
  private readonly paramsNode: HTMLElement;
  private parameters: Record<string, IParameter> = {};
  private paramInputs: Record<string, HTMLInputElement> = {};
  private paramsLoaded = false;
  private previewError: string | null = null;
  private timer = 0;
  private seq = 0;
}

export interface IPromoteValue {
  body?: { notebook: string; name: string; schedule?: string; timezone?: string; parameters?: Record<string, ParamValue> };
  error?: string;
}

function browserTimezone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/**
 * Opens the dialog and creates the job; returns the job, or null when cancelled. A job the form or the
 * server refuses (a bad parameter, a taken name) says why, then the dialog opens again with what was typed.
 */
export async function promoteNotebook(
  notebook: string,
  localParameters: Record<string, IParameter> = {}
): Promise<IJob | null> {
  let draft: IPromoteDraft | null = null;
  for (;;) {
    const body: PromoteForm = new PromoteForm(notebook, localParameters, draft);
    const result = await showDialog<IPromoteValue>({
      title: 'Promote this notebook',
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Create job' })]
    });
    if (!result.button.accept) {
      return null;
    }
    draft = body.getDraft();
    const value: IPromoteValue | null = result.value;
    if (!value?.body) {
      await showErrorMessage('Promote this notebook', value?.error ?? 'Nothing to promote.');
      continue;
    }
    try {
      return await api.createJob(value.body);
    } catch (error) {
      await showErrorMessage('Promote this notebook', error instanceof Error ? error.message : String(error));
    }
  }
}
