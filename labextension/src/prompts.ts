/**
 * The prompt registry: names, versions, aliases; diff two versions; insert as a %%llm cell; set an alias.
 */
import { showErrorMessage } from '@jupyterlab/apputils';

import { api, IPromptRow, IPromptVersion } from './api';
import { renderUnifiedDiff } from './diff';
import { h, notice, replaceChildren } from './dom';
import { formatAge, MISSING } from './format';
import { button, errorNotice, IHost, Section } from './section';

/** A value as one shell word of the %%llm line (the magic splits it with shlex). */
function shellWord(value: string): string {
  return /^[\w.:@%+=,/-]+$/.test(value) ? value : `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** The %%llm options of a version's generation parameters (its `model_config`), in the magic's spelling. */
const CELL_FLAGS: [string, string][] = [
  ['temperature', '--temperature'],
  ['max_tokens', '--max-tokens'],
  ['top_p', '--top-p'],
  ['seed', '--seed'],
  ['stop', '--stop']
];

/**
 * The cell inserted for a prompt version: its model (provider:model) and generation parameters as
 * options, so the cell calls the model as the version was registered:
 * `%%llm local:smollm2 --name summarize --temperature 0 --max-tokens 64`.
 * Parameters the magic has no option for are left out (a one-stop list only: --stop takes one sequence).
 */
export function llmCellSource(
  name: string,
  template: string,
  model?: string | null,
  params: Record<string, unknown> = {}
): string {
  const words = ['%%llm'];
  if (model && /^[^\s:]+:\S+$/.test(model)) {
    words.push(shellWord(model));
  }
  words.push('--name', shellWord(name));
  for (const [key, flag] of CELL_FLAGS) {
    let value = params?.[key];
    if (key === 'stop' && Array.isArray(value)) {
      value = value.length === 1 ? value[0] : undefined;
    }
    if (value === undefined || value === null || value === '' || typeof value === 'object') {
      continue;
    }
    words.push(flag, shellWord(String(value)));
  }
  return `${words.join(' ')}\n${template}`;
}

export class PromptsSection extends Section {
  constructor(host: IHost) {
    super(host, 'prompts');
  }

  async refresh(): Promise<void> {
    if (this.open) {
      return this.loadPrompt(this.open);
    }
    replaceChildren(this.node, notice('loading', 'Loading prompts…'));
    const result = await this.guarded(() => api.prompts(this.host.notebook));
    if (result.ok) {
      this.renderList(result.value.prompts ?? []);
    } else if (result.error !== undefined) {
      this.showError(result.error);
    }
  }

  notebookChanged(): void {
    this.open = null;
    void this.refresh();
  }

  private renderList(prompts: IPromptRow[]): void {
    const toolbar = h(
      'div',
      { class: 'llmops-toolbar' },
      h('span', { class: 'llmops-muted' }, `${prompts.length} prompt${prompts.length === 1 ? '' : 's'}`),
      h('span', { class: 'llmops-spacer' }),
      button('Refresh', () => void this.refresh(), { testid: 'llmops-prompts-refresh' })
    );
    if (!prompts.length) {
      replaceChildren(
        this.node,
        toolbar,
        notice(
          'empty',
          'No prompts registered yet',
          'A %%llm cell with --name NAME registers its template as prompt NAME (a new version when the text changes).',
          'llmops-prompts-empty'
        )
      );
      return;
    }
    const list = h(
      'ul',
      { class: 'llmops-list', testid: 'llmops-prompts-list' },
      ...prompts.map(p =>
        h(
          'li',
          {
            class: 'llmops-list-item',
            testid: 'llmops-prompt-item',
            'data-prompt': p.name,
            onclick: () => {
              this.open = p.name;
              void this.refresh();
            }
          },
          h('span', { class: 'llmops-run-name' }, p.name),
          h('span', { class: 'llmops-muted' }, ` v${p.latest} · ${(p.versions ?? []).length} version(s)`),
          ...Object.entries(p.aliases ?? {}).map(([alias, v]) => aliasBadge(alias, v)),
          p.model ? h('span', { class: 'llmops-muted' }, ` · ${p.model}`) : null
        )
      )
    );
    replaceChildren(this.node, toolbar, list);
  }

  private backBar(name: string): HTMLElement {
    return h(
      'div',
      { class: 'llmops-toolbar' },
      button(
        '← Prompts',
        () => {
          this.open = null;
          void this.refresh();
        },
        { testid: 'llmops-back' }
      ),
      h('span', { class: 'llmops-view-title' }, name)
    );
  }

  private async loadPrompt(name: string): Promise<void> {
    replaceChildren(this.node, this.backBar(name), notice('loading', 'Loading prompt…'));
    const result = await this.guarded(() => api.prompt(name, this.host.notebook));
    if (result.ok) {
      const versions = [...(result.value.versions ?? [])].sort((a, b) => b.version - a.version);
      replaceChildren(this.node, this.backBar(name), this.renderPrompt(name, versions));
    } else if (result.error !== undefined) {
      replaceChildren(this.node, this.backBar(name), errorNotice(result.error));
    }
  }

  private renderPrompt(name: string, versions: IPromptVersion[]): HTMLElement {
    const options = () => versions.map(v => h('option', { value: String(v.version) }, `v${v.version}`));
    const selectA = h('select', { class: 'llmops-select', testid: 'llmops-diff-a', 'aria-label': 'From version' }, ...options());
    const selectB = h('select', { class: 'llmops-select', testid: 'llmops-diff-b', 'aria-label': 'To version' }, ...options());
    if (versions.length > 1) {
      selectA.value = String(versions[1].version);
      selectB.value = String(versions[0].version);
    }
    const diffOut = h('div', { class: 'llmops-diff-out' });
    const showDiff = async () => {
      replaceChildren(diffOut, notice('loading', 'Diffing…'));
      try {
        const d = await api.promptDiff(name, selectA.value, selectB.value, this.host.notebook);
        replaceChildren(diffOut, renderUnifiedDiff(d.diff));
      } catch (error) {
        replaceChildren(diffOut, errorNotice(error));
      }
    };

    const aliasInput = h('input', {
      class: 'llmops-input',
      testid: 'llmops-alias-name',
      placeholder: 'alias, e.g. production',
      'aria-label': 'Alias'
    });
    const aliasVersion = h('select', { class: 'llmops-select', testid: 'llmops-alias-version', 'aria-label': 'Version' }, ...options());
    const setAlias = async () => {
      const alias = aliasInput.value.trim();
      if (!/^[A-Za-z][\w-]*$/.test(alias)) {
        await showErrorMessage('Set alias', 'An alias starts with a letter and has only letters, digits, "_" and "-".');
        return;
      }
      try {
        await api.setAlias(name, alias, Number(aliasVersion.value), this.host.notebook);
        await this.refresh();
      } catch (error) {
        await showErrorMessage('Set alias', error instanceof Error ? error.message : String(error));
      }
    };

    return h(
      'div',
      { class: 'llmops-detail', testid: 'llmops-prompt-detail' },
      versions.length > 1
        ? h(
            'div',
            { class: 'llmops-toolbar' },
            'Diff ',
            selectA,
            ' → ',
            selectB,
            button('Diff', () => void showDiff(), { testid: 'llmops-diff-button' })
          )
        : null,
      diffOut,
      h(
        'div',
        { class: 'llmops-toolbar' },
        'Set ',
        aliasInput,
        ' → ',
        aliasVersion,
        button('Set alias', () => void setAlias(), { testid: 'llmops-alias-set' })
      ),
      ...versions.map(v => this.renderVersion(name, v))
    );
  }

  private renderVersion(name: string, v: IPromptVersion): HTMLElement {
    return h(
      'div',
      { class: 'llmops-version', testid: 'llmops-prompt-version', 'data-version': String(v.version) },
      h(
        'div',
        { class: 'llmops-toolbar' },
        h('strong', null, `v${v.version}`),
        ...(v.aliases ?? []).map(a => aliasBadge(a)),
        h('span', { class: 'llmops-muted' }, ` ${v.model ?? ''} ${v.created_ms ? formatAge(v.created_ms) : ''}`),
        h('span', { class: 'llmops-spacer' }),
        button(
          'Insert as %%llm cell',
          () => {
            if (!this.host.insertCell(llmCellSource(name, v.template, v.model, v.params))) {
              void showErrorMessage('Insert as %%llm cell', 'Open a notebook first: the cell is inserted below its active cell.');
            }
          },
          {
            testid: 'llmops-insert-cell',
            title: `Insert a code cell below the active cell of the active notebook:\n${llmCellSource(name, '', v.model, v.params).trim()}`
          }
        )
      ),
      paramsText(v.params) ? h('div', { class: 'llmops-muted', testid: 'llmops-version-params' }, paramsText(v.params)) : null,
      v.commit_message ? h('div', { class: 'llmops-muted' }, v.commit_message) : null,
      h('pre', { class: 'llmops-pre' }, v.template ?? MISSING)
    );
  }

  private open: string | null = null;
}

/** A version's generation parameters in one line: "temperature 0 · max_tokens 64". */
function paramsText(params: Record<string, unknown> | null | undefined): string {
  return Object.entries(params ?? {})
    .map(([k, v]) => `${k} ${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' · ');
}

function aliasBadge(alias: string, version?: number): HTMLElement {
  return h('span', { class: 'llmops-badge', testid: 'llmops-alias' }, version === undefined ? alias : `${alias}→v${version}`);
}
