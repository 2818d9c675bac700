/**
 * JupyterLab 4 / Notebook 7 plugin: adds the LLMOps panel to the left area and follows the active notebook.
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { MainAreaWidget } from '@jupyterlab/apputils';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

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

let htmlViews = 0;

/**
 * An HTML document (a job's report) in a main-area tab. The frame is sandboxed without `allow-scripts`:
 * whatever the executed notebook's outputs held, nothing in it runs or reaches this page (the server
 * sends the same document with a CSP sandbox header when it is opened directly).
 */
export function htmlView(title: string, html: string): MainAreaWidget<Widget> {
  const content = new Widget();
  content.addClass('llmops-html-view');
  const frame = document.createElement('iframe');
  frame.setAttribute('sandbox', '');
  frame.setAttribute('referrerpolicy', 'no-referrer');
  frame.dataset.testid = 'llmops-report-frame';
  frame.title = title;
  frame.srcdoc = html;
  content.node.appendChild(frame);
  const widget = new MainAreaWidget({ content });
  widget.id = `llmops-lab-html-${++htmlViews}`;
  widget.title.label = title;
  widget.title.caption = title;
  widget.title.closable = true;
  return widget;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'llmops-lab:sidebar',
  description: 'LLMOps sidebar: runs, prompts and jobs of the active notebook.',
  autoStart: true,
  optional: [INotebookTracker, ILayoutRestorer],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker | null, restorer: ILayoutRestorer | null) => {
    const panel = new LLMOpsPanel({
      insertCell: source => insertCell(tracker, source),
      localParameters: () => localParameters(tracker),
      openPath: async path => {
        await app.commands.execute('docmanager:open', { path });
      },
      openHtml: (title, html) => {
        const view = htmlView(title, html);
        app.shell.add(view, 'main');
        app.shell.activateById(view.id);
      }
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
