/**
 * What the three sections (Runs, Prompts, Jobs) share: the host panel and a guarded loader.
 */
import { IContext } from './api';
import { h, notice, replaceChildren } from './dom';
import { ApiError, errorTitle } from './errors';

/** What a section needs from the panel. */
export interface IHost {
  /** The active notebook's path relative to the server root, or null. */
  readonly notebook: string | null;
  readonly context: IContext | null;
  /** Inserts a code cell below the active cell of the active notebook; false if no notebook. */
  insertCell(source: string): boolean;
  /** Promote the active notebook (opens the dialog). */
  promote(): Promise<void>;
  /** Opens a file in JupyterLab (docmanager:open; `path` relative to the server root). */
  openPath(path: string): Promise<void>;
  /** Shows an HTML document (a job report) in a main-area tab, in a sandboxed frame. */
  openHtml(title: string, html: string): void;
}

export abstract class Section {
  readonly node: HTMLElement;

  constructor(
    protected readonly host: IHost,
    readonly id: string
  ) {
    this.node = h('div', { class: `llmops-section llmops-section-${id}`, testid: `llmops-section-${id}` });
  }

  /** Reload from the server (the visible view). `quiet` = a background poll: keep content on error. */
  abstract refresh(quiet?: boolean): Promise<void>;

  /** Called when the active notebook changes. */
  notebookChanged(): void {
    void this.refresh();
  }

  /** Called when the panel's context (store, experiment, MLflow UI state) was reloaded. */
  contextChanged(): void {
    // most sections show nothing of the context
  }

  /** Whether the background poll should refresh this section now. */
  get pollable(): boolean {
    return false;
  }

  /**
   * Runs `load` and drops its result if another load started meanwhile (a newer notebook or view),
   * so a slow answer never overwrites a newer one.
   */
  protected async guarded<T>(load: () => Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error?: unknown }> {
    const generation = ++this._generation;
    try {
      const value = await load();
      return generation === this._generation ? { ok: true, value } : { ok: false };
    } catch (error) {
      return generation === this._generation ? { ok: false, error } : { ok: false };
    }
  }

  protected showError(error: unknown): void {
    replaceChildren(this.node, errorNotice(error));
  }

  private _generation = 0;
}

export function errorNotice(error: unknown): HTMLElement {
  const message = error instanceof Error ? error.message : String(error);
  const testid =
    error instanceof ApiError && error.kind === 'missing-extension' ? 'llmops-missing-extension' : 'llmops-error';
  return notice('error', errorTitle(error), message, testid);
}

export function button(label: string, onClick: () => void, attrs: Record<string, string | boolean> = {}): HTMLButtonElement {
  return h('button', { class: 'llmops-button jp-mod-styled', type: 'button', ...attrs, onclick: () => onClick() }, label);
}

export function keyValueTable(entries: Record<string, unknown>, testid: string, format: (v: unknown) => string = String): HTMLElement {
  const keys = Object.keys(entries ?? {}).sort();
  if (!keys.length) {
    return h('div', { class: 'llmops-muted', testid }, 'none');
  }
  return h(
    'table',
    { class: 'llmops-kv', testid },
    h('tbody', null, ...keys.map(k => h('tr', null, h('th', null, k), h('td', null, format(entries[k])))))
  );
}
