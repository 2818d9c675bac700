/**
 * A tiny element builder. Text always goes through textContent, so server strings are never parsed as HTML.
 */

export type Child = Node | string | number | null | undefined | false;

export interface IAttrs {
  class?: string;
  testid?: string;
  title?: string;
  [name: string]: string | number | boolean | undefined | EventListener;
}

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: IAttrs | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      el.addEventListener(name.replace(/^on/, '').toLowerCase(), value);
    } else if (name === 'class') {
      el.className = String(value);
    } else if (name === 'testid') {
      el.dataset.testid = String(value);
    } else if (name === 'checked' || name === 'disabled' || name === 'value') {
      (el as unknown as Record<string, unknown>)[name] = name === 'value' ? String(value) : Boolean(value);
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, ...children);
  return el;
}

export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replaces every child of `el`. */
export function replaceChildren(el: Element, ...children: Child[]): void {
  while (el.firstChild) {
    el.removeChild(el.firstChild);
  }
  append(el, ...children);
}

/** A message box for empty states and errors: never a blank panel. */
export function notice(
  kind: 'empty' | 'error' | 'info' | 'loading',
  title: string,
  detail?: string,
  testid = `llmops-${kind}`
): HTMLElement {
  return h(
    'div',
    { class: `llmops-notice llmops-notice-${kind}`, testid, role: kind === 'error' ? 'alert' : 'status' },
    h('div', { class: 'llmops-notice-title' }, title),
    detail ? h('div', { class: 'llmops-notice-detail' }, detail) : null
  );
}
