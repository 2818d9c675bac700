import { diffStats, DiffOp, renderUnifiedDiff, renderWordDiff, unifiedLineKind } from '../diff';

describe('renderWordDiff', () => {
  const ops: DiffOp[] = [
    ['=', 'The cat'],
    ['-', 'sat'],
    ['+', 'slept soundly'],
    ['=', 'on the mat.']
  ];

  it('marks removed and added words', () => {
    const el = renderWordDiff(ops);
    expect(el.textContent).toBe('The cat sat slept soundly on the mat.'); // words never run together
    expect(el.querySelector('del')!.textContent).toBe('sat');
    expect(el.querySelector('ins')!.textContent).toBe('slept soundly');
    expect(el.querySelector('ins')!.className).toBe('llmops-diff-ins');
    expect(el.dataset.testid).toBe('llmops-worddiff');
  });

  it('never parses server text as HTML', () => {
    const el = renderWordDiff([['+', '<img src=x onerror=alert(1)>']]);
    expect(el.querySelector('img')).toBeNull();
    expect(el.textContent).toBe('<img src=x onerror=alert(1)>');
  });

  it('tolerates missing and malformed input', () => {
    expect(renderWordDiff(null).childNodes.length).toBe(0);
    expect(renderWordDiff([['='] as unknown as DiffOp]).childNodes.length).toBe(0);
  });

  it('counts changed words', () => {
    expect(diffStats(ops)).toEqual({ added: 2, removed: 1 });
    expect(diffStats(undefined)).toEqual({ added: 0, removed: 0 });
  });
});

describe('renderUnifiedDiff', () => {
  const text = '--- summarize@1\n+++ summarize@2\n@@ -1 +1 @@\n-Summarize:\n+Summarize in one sentence:\n {{ article }}\n';

  it('classes each line', () => {
    const pre = renderUnifiedDiff(text);
    const kinds = Array.from(pre.querySelectorAll('span')).map(s => s.className);
    expect(kinds).toEqual([
      'llmops-unidiff-header',
      'llmops-unidiff-header',
      'llmops-unidiff-hunk',
      'llmops-unidiff-del',
      'llmops-unidiff-add',
      'llmops-unidiff-context'
    ]);
    expect(pre.textContent).toBe(text);
  });

  it('says when versions are identical', () => {
    expect(renderUnifiedDiff('').textContent).toMatch(/identical/);
  });

  it('knows line kinds', () => {
    expect(unifiedLineKind('+++ b')).toBe('header');
    expect(unifiedLineKind('+x')).toBe('add');
    expect(unifiedLineKind('-x')).toBe('del');
    expect(unifiedLineKind(' x')).toBe('context');
  });
});
