/**
 * JupyterLab 4 / Notebook 7 plugin: adds the LLMOps panel to the left area and follows the active notebook.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';

import { LLMOpsPanel } from './panel';
import { IParameter, parseParametersCell } from './params';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M4 4h7v7H4zM13 4h7v4h-7zM13 10h7v10h-7zM4 13h7v7H4z" opacity="0.35"/>
    <path d="M5 19l4-6 4 3 6-9 1.6 1.1-7.1 10.6-4-3-2.9 4.4z"/>
  </g>
</svg>`;

export const llmopsIcon = new LabIcon({ name: 'llmops-lab:sidebar', svgstr: ICON_SVG });

function insertCell(tracker: INotebookTracker | null, source: string): boolean {
  const panel = tracker?.currentWidget;
  if (!panel) {
    return false;
  }
  const notebook = panel.content;
  NotebookActions.insertBelow(notebook);
  if (notebook.activeCell?.model.type !== 'code') {
    NotebookActions.changeCellType(notebook, 'code');
  }
  notebook.activeCell?.model.sharedModel.setSource(source);
  return true;
}

function localParameters(tracker: INotebookTracker | null): Record<string, IParameter> {
  const cells = tracker?.currentWidget?.content.model?.cells;
  if (!cells) {
    return {};
  }
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    const tags = (cell.getMetadata('tags') as string[] | undefined) ?? [];
    if (cell.type === 'code' && tags.includes('parameters')) {
      return parseParametersCell(cell.sharedModel.getSource());
    }
  }
  return {};
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'llmops-lab:sidebar',
  description: 'LLMOps sidebar: runs, prompts and jobs of the active notebook.',
  autoStart: true,
  optional: [INotebookTracker, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker | null, restorer: ILayoutRestorer | null) => {
    const panel = new LLMOpsPanel({
      insertCell: source => insertCell(tracker, source),
      localParameters: () => localParameters(tracker)
    });
    panel.title.icon = llmopsIcon;
    app.shell.add(panel, 'left', { rank: 650 });
    restorer?.add(panel, panel.id);

    if (tracker) {
      let watched: NotebookPanel | null = null;
      const follow = () => {
        const current = tracker.currentWidget;
        if (watched && watched !== current) {
          watched.context.pathChanged.disconnect(follow);
        }
        if (current && watched !== current) {
          current.context.pathChanged.connect(follow);
        }
        watched = current;
        panel.setNotebook(current ? current.context.path : null);
      };
      tracker.currentChanged.connect(follow);
      follow();
      NotebookActions.executed.connect((_, { notebook }) => {
        if (tracker.currentWidget?.content === notebook) {
          panel.cellExecuted();
        }
      });
    }
  }
};

export default plugin;
