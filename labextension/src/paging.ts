/**
 * Paging state of a list fed by `next_page_token`, plus the selection used for comparisons.
 */

export interface IPage<T> {
  items: T[];
  nextPageToken: string | null | undefined;
}

export class PagedList<T> {
  constructor(private readonly keyOf: (item: T) => string) {}

  get items(): readonly T[] {
    return this._items;
  }

  /** The token to ask for the next page, or null when everything is loaded. */
  get nextPageToken(): string | null {
    return this._next;
  }

  get hasMore(): boolean {
    return this._next !== null;
  }

  /** The first page replaces everything (a refresh), keeping the pages loaded since if still valid. */
  reset(page: IPage<T>): void {
    this._items = dedupe(page.items, this.keyOf);
    this._next = page.nextPageToken || null;
  }

  /** A further page is appended; rows already present (a new run shifted the pages) are skipped. */
  append(page: IPage<T>): void {
    this._items = dedupe([...this._items, ...page.items], this.keyOf);
    this._next = page.nextPageToken || null;
  }

  clear(): void {
    this._items = [];
    this._next = null;
  }

  private _items: T[] = [];
  private _next: string | null = null;
}

function dedupe<T>(items: T[], keyOf: (item: T) => string): T[] {
  const seen = new Set<string>();
  const out: T[] = [];
  for (const item of items) {
    const key = keyOf(item);
    if (!seen.has(key)) {
      seen.add(key);
      out.push(item);
    }
  }
  return out;
}

/** Ordered selection with a maximum size (the compare endpoint takes 2 to 6 runs). */
export class Selection {
  constructor(readonly max: number = 6) {}

  get ids(): string[] {
    return [...this._ids];
  }

  get size(): number {
    return this._ids.length;
  }

  has(id: string): boolean {
    return this._ids.includes(id);
  }

  /** Returns false when the selection is full and `id` was not added. */
  toggle(id: string): boolean {
    if (this.has(id)) {
      this._ids = this._ids.filter(x => x !== id);
      return true;
    }
    if (this._ids.length >= this.max) {
      return false;
    }
    this._ids.push(id);
    return true;
  }

  /** Drops ids that are no longer listed. */
  retain(valid: Iterable<string>): void {
    const keep = new Set(valid);
    this._ids = this._ids.filter(id => keep.has(id));
  }

  clear(): void {
    this._ids = [];
  }

  private _ids: string[] = [];
}
