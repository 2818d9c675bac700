/**
 * The LLMOps sidebar: a header (store, experiment, MLflow UI) and three tabs (Runs, Prompts, Jobs).
 * Live: polls the visible tab every few seconds while the panel is shown, and refreshes the runs after
 * each executed cell of the active notebook.
 */
import { showErrorMessage } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { api, IContext } from './api';
import { h, replaceChildren } from './dom';
import { ApiError } from './errors';
import { JobsSection, promoteNotebook } from './jobs';
import { IParameter } from './params';
import { PromptsSection } from './prompts';
import { shortenPath } from './format';
import { isSafeHttpUrl } from './query';
import { RunsSection } from './runs';
import { button, errorNotice, IHost, Section } from './section';

export const POLL_MS = 4000;

/** A path as text with a line-break opportunity after each "/", so a wrapped path breaks between folders. */
function pathWords(path: string): (string | HTMLElement)[] {
  const out: (string | HTMLElement)[] = [];
  for (const part of path.split(/(?<=\/)/)) {
    if (out.length) {
      out.push(h('wbr'));
    }
    out.push(part);
  }
  return out;
}

/** The MLflow UI process runs but does not answer yet (it needs ~10 s, more on a busy machine). */
function uiStarting(ctx: IContext | null): boolean {
  return !!ctx?.mlflow_ui?.running && ctx.mlflow_ui.ready === false;
}

export interface IPanelOptions {
  /** Inserts a code cell below the active cell of the active notebook; false if none. */
  insertCell: (source: string) => boolean;
  /** The parameters cell of the active notebook as parsed locally (fallback for the promote dialog). */
  localParameters: () => Record<string, IParameter>;
  /** Opens a file (path relative to the server root) in JupyterLab. */
  openPath: (path: string) => Promise<void>;
  /** Shows an HTML document in a main-area tab (sandboxed). */
  openHtml: (title: string, html: string) => void;
}

export class LLMOpsPanel extends Widget implements IHost {
  constructor(private readonly options: IPanelOptions) {
    super();
    this.id = 'llmops-lab-sidebar';
    this.addClass('llmops-panel');
    this.node.dataset.testid = 'llmops-panel';
    this.title.caption = 'LLMOps: runs, prompts and jobs';

    this.sections = [new RunsSection(this), new PromptsSection(this), new JobsSection(this)];
    this.headerNode = h('div', { class: 'llmops-header', testid: 'llmops-header' });
    this.tabsNode = h(
      'div',
      { class: 'llmops-tabs', role: 'tablist' },
      ...this.sections.map(s =>
        h(
          'button',
          {
            class: 'llmops-tab',
            type: 'button',
            role: 'tab',
            testid: `llmops-tab-${s.id}`,
            'data-section': s.id,
            onclick: () => this.select(s.id)
          },
          s.id[0].toUpperCase() + s.id.slice(1)
        )
      )
    );
    this.bodyNode = h('div', { class: 'llmops-body' });
    this.node.append(
      h('div', { class: 'llmops-title' }, 'LLMOps'),
      this.headerNode,
      this.tabsNode,
      this.bodyNode
    );
    this.select('runs', false);
    this.renderHeader();
  }

  get notebook(): string | null {
    return this._notebook;
  }

  get context(): IContext | null {
    return this._context;
  }

  get activeSection(): Section {
    return this.sections.find(s => s.id === this.active)!;
  }

  insertCell(source: string): boolean {
    return this.options.insertCell(source);
  }

  openPath(path: string): Promise<void> {
    return this.options.openPath(path);
  }

  openHtml(title: string, html: string): void {
    this.options.openHtml(title, html);
  }

  async promote(): Promise<void> {
    if (!this._notebook) {
      return;
    }
    const job = await promoteNotebook(this._notebook, this.options.localParameters());
    if (job) {
      this.select('jobs');
    }
  }

  /** The active notebook changed (path relative to the server root, or null). */
  setNotebook(path: string | null): void {
    if (path === this._notebook) {
      return;
    }
    this._notebook = path;
    this._context = null;
    this.contextError = null;
    this.loaded.clear();
    for (const s of this.sections) {
      if (s.id !== this.active) {
        replaceChildren(s.node);
      }
    }
    if (this.isVisible) {
      void this.loadContext();
      this.activeSection.notebookChanged();
      this.loaded.add(this.active);
    }
    this.renderHeader();
  }

  /**
   * A cell of the active notebook finished: its run reaches MLflow shortly after (spool writer), or much
   * later after the notebook's first cell (the kernel's writer imports MLflow and creates the store first,
   * ≈ 20 s on 2 busy cores). Refresh soon, then every second until a new run is listed (at most 40 s), rather
   * than leave it to the 4 s poll.
   */
  cellExecuted(): void {
    if (!this.isVisible || this.active !== 'runs') {
      return;
    }
    window.clearTimeout(this.executedTimer);
    const runs = this.sections.find(s => s.id === 'runs') as RunsSection;
    const before = runs.newestRunId;
    const notebook = this._notebook;
    const deadline = Date.now() + 40_000;
    const tick = async () => {
      if (!this.isVisible || this.active !== 'runs' || this._notebook !== notebook) {
        return;
      }
      if (!this.polling) {
        this.polling = true;
        try {
          await runs.refresh(true);
        } finally {
          this.polling = false;
        }
      }
      if (runs.newestRunId === before && Date.now() < deadline) {
        this.executedTimer = window.setTimeout(() => void tick(), 1000);
      }
    };
    this.executedTimer = window.setTimeout(() => void tick(), 800);
  }

  select(id: string, load = true): void {
    this.active = id;
    for (const tab of Array.from(this.tabsNode.children) as HTMLElement[]) {
      const selected = tab.dataset.section === id;
      tab.classList.toggle('llmops-tab-active', selected);
      tab.setAttribute('aria-selected', String(selected));
    }
    replaceChildren(this.bodyNode, this.activeSection.node);
    if (load && this.isVisible) {
      if (!this.loaded.has(id)) {
        this.loaded.add(id);
        this.activeSection.notebookChanged();
      } else {
        void this.activeSection.refresh(true);
      }
    }
  }

  /** How many characters of the store's URI fit on two lines of the header at the panel's width. */
  private storeChars(): number {
    const width = this.node.clientWidth || 300;
    return Math.max(40, Math.floor(((width - 24) * 2) / 7.2) - 8);
  }

  protected onResize(): void {
    const width = this.node.clientWidth;
    if (width && width !== this.lastWidth) {
      this.lastWidth = width;
      this.renderHeader();
    }
  }

  protected onAfterShow(): void {
    if (!this._context && !this.contextError) {
      void this.loadContext();
    }
    this.select(this.active);
    this.pollTimer = window.setInterval(() => this.poll(), POLL_MS);
  }

  protected onAfterHide(): void {
    window.clearInterval(this.pollTimer);
  }

  dispose(): void {
    window.clearInterval(this.pollTimer);
    window.clearTimeout(this.executedTimer);
    super.dispose();
  }

  private poll(): void {
    if (!this.isVisible || document.hidden) {
      return;
    }
    if (uiStarting(this._context) && !this.mlflowStarting) {
      void this.loadContext(); // started earlier (or elsewhere) and still coming up: show the link once it answers
    }
    const section = this.activeSection;
    if (section.pollable && !this.polling) {
      this.polling = true;
      void section.refresh(true).finally(() => (this.polling = false));
    }
  }

  private async loadContext(): Promise<void> {
    const notebook = this._notebook;
    try {
      const ctx = await api.context(notebook);
      if (notebook === this._notebook) {
        this._context = ctx;
        this.contextError = null;
      }
    } catch (error) {
      if (notebook === this._notebook) {
        this._context = null;
        this.contextError = error;
      }
    }
    this.renderHeader();
    for (const section of this.sections) {
      section.contextChanged();
    }
  }

  /** Starts `llmops-lab ui` (once per store); it answers ~10 s later: poll the context until `ready`. */
  private async startMlflowUi(): Promise<void> {
    try {
      this.mlflowStarting = true;
      this.renderHeader();
      await api.startMlflowUi(this._notebook);
      for (let i = 0; i < 20; i++) {
        await this.loadContext();
        const ui = this._context?.mlflow_ui;
        if (!ui || ui.ready !== false) {
          break;
        }
        await new Promise(resolve => window.setTimeout(resolve, 1500));
      }
    } catch (error) {
      await showErrorMessage('Start MLflow UI', error instanceof Error ? error.message : String(error));
    } finally {
      this.mlflowStarting = false;
      this.renderHeader();
    }
  }

  private renderHeader(): void {
    const ctx = this._context;
    const chars = this.storeChars();
    const nb = h(
      'div',
      { class: 'llmops-header-line llmops-header-wrap', testid: 'llmops-notebook', title: this._notebook ?? '' },
      ...(this._notebook ? ['Notebook: ', ...pathWords(shortenPath(this._notebook, chars))] : ['No active notebook'])
    );
    if (this.contextError) {
      // The missing server extension explains itself once, here; the sections say it again.
      replaceChildren(this.headerNode, nb, this.contextError instanceof ApiError ? errorNotice(this.contextError) : null);
      return;
    }
    if (!ctx) {
      replaceChildren(this.headerNode, nb);
      return;
    }
    const ui = ctx.mlflow_ui ?? { running: false, url: null };
    const uiNode = this.mlflowStarting || uiStarting(ctx)
      ? h('span', { class: 'llmops-muted', testid: 'llmops-mlflow-starting' }, 'Starting the MLflow UI…')
      : ui.running && ui.ready !== false && ui.url && isSafeHttpUrl(ui.url)
        ? h(
            'a',
            { class: 'llmops-link', testid: 'llmops-mlflow-link', href: ui.url, target: '_blank', rel: 'noopener noreferrer' },
            'MLflow UI ↗'
          )
        : button('Start MLflow UI', () => void this.startMlflowUi(), { testid: 'llmops-start-mlflow' });
    replaceChildren(
      this.headerNode,
      nb,
      // The store's URI is long (an absolute path): cut in the middle to the panel's width, whole in the tooltip.
      h(
        'div',
        { class: 'llmops-header-line llmops-header-store', testid: 'llmops-store', title: ctx.tracking_uri },
        'Store: ',
        h('span', { class: 'llmops-store-path', testid: 'llmops-store-path' }, ...pathWords(shortenPath(ctx.tracking_uri, chars)))
      ),
      h(
        'div',
        { class: 'llmops-header-line llmops-header-wrap', testid: 'llmops-experiment', title: ctx.experiment },
        'Experiment: ',
        ...pathWords(shortenPath(ctx.experiment, chars))
      ),
      h('div', { class: 'llmops-header-actions' }, uiNode)
    );
  }

  private readonly sections: Section[];
  private readonly headerNode: HTMLElement;
  private readonly tabsNode: HTMLElement;
  private readonly bodyNode: HTMLElement;
  private readonly loaded = new Set<string>();
  private active = 'runs';
  private _notebook: string | null = null;
  private _context: IContext | null = null;
  private contextError: unknown = null;
  private pollTimer = 0;
  private executedTimer = 0;
  private polling = false;
  private mlflowStarting = false;
  private lastWidth = 0;
}
