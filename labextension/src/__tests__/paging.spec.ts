import { PagedList, Selection } from '../paging';

type Row = { id: string };
const rows = (...ids: string[]): Row[] => ids.map(id => ({ id }));

describe('PagedList', () => {
  it('appends pages and follows the next token', () => {
    const list = new PagedList<Row>(r => r.id);
    expect(list.hasMore).toBe(false);
    list.reset({ items: rows('c', 'b'), nextPageToken: 't1' });
    expect(list.hasMore).toBe(true);
    expect(list.nextPageToken).toBe('t1');
    list.append({ items: rows('a'), nextPageToken: null });
    expect(list.items.map(r => r.id)).toEqual(['c', 'b', 'a']);
    expect(list.hasMore).toBe(false);
  });

  it('skips rows already listed when a new run shifted the pages', () => {
    const list = new PagedList<Row>(r => r.id);
    list.reset({ items: rows('c', 'b'), nextPageToken: 't1' });
    list.append({ items: rows('b', 'a'), nextPageToken: '' });
    expect(list.items.map(r => r.id)).toEqual(['c', 'b', 'a']);
    expect(list.nextPageToken).toBeNull();
  });

  it('reset replaces everything; clear empties', () => {
    const list = new PagedList<Row>(r => r.id);
    list.reset({ items: rows('a'), nextPageToken: 'x' });
    list.reset({ items: rows('d', 'a'), nextPageToken: undefined });
    expect(list.items.map(r => r.id)).toEqual(['d', 'a']);
    expect(list.hasMore).toBe(false);
    list.clear();
    expect(list.items).toEqual([]);
  });
});

describe('Selection', () => {
  it('toggles in order and caps the size', () => {
    const sel = new Selection(3);
    expect(sel.toggle('a')).toBe(true);
    expect(sel.toggle('b')).toBe(true);
    expect(sel.toggle('c')).toBe(true);
    expect(sel.toggle('d')).toBe(false);
    expect(sel.ids).toEqual(['a', 'b', 'c']);
    sel.toggle('b');
    expect(sel.ids).toEqual(['a', 'c']);
    expect(sel.has('b')).toBe(false);
  });

  it('drops ids that are no longer listed', () => {
    const sel = new Selection();
    sel.toggle('a');
    sel.toggle('b');
    sel.retain(['b', 'z']);
    expect(sel.ids).toEqual(['b']);
    sel.clear();
    expect(sel.size).toBe(0);
  });
});
