/**
 * Renders the server's diffs as DOM nodes (text only, never HTML from the server).
 */
import { h } from './dom';

/** One word-diff operation from the compare endpoint: '=' kept, '+' added, '-' removed. */
export type DiffOp = [string, string];

/**
 * [['=', 'a'], ['-', 'b'], ['+', 'c']] -> <div>a <del>b</del> <ins>c</ins></div>: the server joins the words
 * of one operation with single spaces and operations are separated by one space (llmops_lab.compare.word_diff).
 */
export function renderWordDiff(ops: DiffOp[] | null | undefined): HTMLElement {
  const root = h('div', { class: 'llmops-worddiff', testid: 'llmops-worddiff' });
  for (const op of ops ?? []) {
    if (!Array.isArray(op) || op.length < 2) {
      continue;
    }
    if (root.childNodes.length) {
      root.appendChild(document.createTextNode(' '));
    }
    const [kind, text] = op;
    if (kind === '+') {
      root.appendChild(h('ins', { class: 'llmops-diff-ins' }, String(text)));
    } else if (kind === '-') {
      root.appendChild(h('del', { class: 'llmops-diff-del' }, String(text)));
    } else {
      root.appendChild(document.createTextNode(String(text)));
    }
  }
  return root;
}

/** Counts of added and removed words, for a one-line summary. */
export function diffStats(ops: DiffOp[] | null | undefined): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const [kind, text] of ops ?? []) {
    const words = String(text).split(/\s+/).filter(Boolean).length;
    if (kind === '+') {
      added += words;
    } else if (kind === '-') {
      removed += words;
    }
  }
  return { added, removed };
}

/** The class of one line of a unified diff. */
export function unifiedLineKind(line: string): 'header' | 'hunk' | 'add' | 'del' | 'context' {
  if (line.startsWith('+++') || line.startsWith('---')) {
    return 'header';
  }
  if (line.startsWith('@@')) {
    return 'hunk';
  }
  if (line.startsWith('+')) {
    return 'add';
  }
  if (line.startsWith('-')) {
    return 'del';
  }
  return 'context';
}

/** A unified diff text -> <pre> with one classed <span> per line. */
export function renderUnifiedDiff(text: string | null | undefined): HTMLElement {
  const pre = h('pre', { class: 'llmops-unidiff', testid: 'llmops-unidiff' });
  const lines = (text ?? '').replace(/\n$/, '').split('\n');
  if (!text || !text.trim()) {
    pre.appendChild(h('span', { class: 'llmops-unidiff-context' }, 'The two versions are identical.'));
    return pre;
  }
  for (const line of lines) {
    pre.appendChild(h('span', { class: `llmops-unidiff-${unifiedLineKind(line)}` }, line));
    pre.appendChild(document.createTextNode('\n'));
  }
  return pre;
}
