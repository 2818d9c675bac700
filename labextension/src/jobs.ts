/**
 * Scheduled notebook jobs: list, status, next run, last metrics; "Run now"; "Promote this notebook…".
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { api, IJob, IPreview } from './api';
import { h, notice, replaceChildren } from './dom';
import { formatMetric, MISSING } from './format';
import { changedParameters, formatParamValue, IParameter, ParamValue } from './params';
import { button, IHost, Section } from './section';

export class JobsSection extends Section {
  constructor(host: IHost) {
    super(host, 'jobs');
  }

  get pollable(): boolean {
    return true;
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
      )
    );
  }
}

/** The body of the "Promote this notebook…" dialog: name, schedule with a live preview, parameters. */
export class PromoteForm extends Widget {
  /** `localParameters`: parsed from the open notebook, shown until (or if) the server's preview answers. */
  constructor(
    readonly notebook: string,
    private readonly localParameters: Record<string, IParameter> = {}
  ) {
    super();
    this.addClass('llmops-promote');
    const base = notebook.split('/').pop() ?? notebook;
    this.nameInput = h('input', {
      class: 'llmops-input',
      testid: 'llmops-promote-name',
      'aria-label': 'Job name',
      value: base.replace(/\.ipynb$/, '').replace(/[^\w-]+/g, '-')
    });
    this.scheduleInput = h('input', {
      class: 'llmops-input',
      testid: 'llmops-promote-schedule',
      'aria-label': 'Schedule',
      placeholder: 'cron, e.g. 0 2 * * *  (empty: run manually)',
      value: '0 2 * * *',
      oninput: () => this.schedulePreview()
    });
    this.timezoneInput = h('input', {
      class: 'llmops-input',
      testid: 'llmops-promote-timezone',
      'aria-label': 'Time zone',
      placeholder: 'IANA time zone, e.g. Europe/Paris (empty: UTC)',
      value: browserTimezone(),
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

  /** The POST body, or the one-line reason it cannot be built (the dialog must not throw). */
  getValue(): IPromoteValue {
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
        replaceChildren(
          this.previewNode,
          h('span', { class: 'llmops-preview-error' }, error instanceof Error ? error.message : String(error))
        );
      }
      return;
    }
    if (seq !== this.seq) {
      return;
    }
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
          value: formatParamValue(parameters[name].value)
        });
        this.paramInputs[name] = input;
        return h('label', { class: 'llmops-field' }, `${name} (${parameters[name].type})`, input);
      })
    );
  }

  private readonly nameInput: HTMLInputElement;
  private readonly scheduleInput: HTMLInputElement;
  private readonly timezoneInput: HTMLInputElement;
  private readonly previewNode: HTMLElement;
  private readonly paramsNode: HTMLElement;
  private parameters: Record<string, IParameter> = {};
  private paramInputs: Record<string, HTMLInputElement> = {};
  private paramsLoaded = false;
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

/** Opens the dialog and creates the job; returns the job or null when cancelled or failed. */
export async function promoteNotebook(
  notebook: string,
  localParameters: Record<string, IParameter> = {}
): Promise<IJob | null> {
  const body = new PromoteForm(notebook, localParameters);
  const result = await showDialog({
    title: 'Promote this notebook',
    body,
    buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Create job' })]
  });
  if (!result.button.accept) {
    return null;
  }
  const value = result.value;
  if (!value?.body) {
    await showErrorMessage('Promote this notebook', value?.error ?? 'Nothing to promote.');
    return null;
  }
  try {
    return await api.createJob(value.body);
  } catch (error) {
    await showErrorMessage('Promote this notebook', error instanceof Error ? error.message : String(error));
    return null;
  }
}
