import { h } from './dom';
import { IRelease, ISearchResult } from './request';

/** What the other ways to search need of the panel. */
export interface ISearchHost {
  /** The release version picked in the panel. */
  searchVersion(): IRelease | null;
  /** The catalog picked in the panel (lrs by default). */
  searchCatalog(): string;
  /** Show rows found another way (ADQL, an upload) in the result grid, paged in the browser. */
  showRows(result: ISearchResult, note?: string): void;
}

/** A tab body that wants to know when it is shown or the version changes. */
export interface ISearchTab {
  readonly node: HTMLElement;
  shown?(): void;
}

/**
 * A row of tabs over the search forms ("Search", "ADQL", "Upload"): one body shown at a time.
 * Each tab is a button with `data-tab`, each body a section with the same `data-tab`.
 */
export class SearchTabs {
  readonly node: HTMLElement;
  private buttons = new Map<string, HTMLButtonElement>();
  private bodies = new Map<string, HTMLElement>();
  private tabs = new Map<string, ISearchTab | null>();
  private active = '';

  constructor(
    tabs: { id: string; label: string; body: HTMLElement; tab?: ISearchTab }[]
  ) {
    const strip = h('div', { class: 'jp-SurveyPanel-tabs', role: 'tablist' });
    const bodies = h('div', { class: 'jp-SurveyPanel-tabBodies' });
    for (const t of tabs) {
      const button = h(
        'button',
        {
          class: 'jp-SurveyPanel-tab',
          type: 'button',
          role: 'tab',
          'data-tab': t.id,
          onclick: () => this.show(t.id)
        },
        t.label
      );
      const body = h(
        'section',
        { class: 'jp-SurveyPanel-tabBody', role: 'tabpanel', 'data-tab': t.id },
        t.body
      );
      this.buttons.set(t.id, button);
      this.bodies.set(t.id, body);
      this.tabs.set(t.id, t.tab ?? null);
      strip.append(button);
      bodies.append(body);
    }
    this.node = h('div', { class: 'jp-SurveyPanel-modes' }, strip, bodies);
    if (tabs.length) {
      this.show(tabs[0].id);
    }
  }

  /** Show tab `id`. */
  show(id: string): void {
    this.active = id;
    for (const [key, button] of this.buttons) {
      const on = key === id;
      button.classList.toggle('jp-mod-active', on);
      button.setAttribute('aria-selected', on ? 'true' : 'false');
      this.bodies.get(key)!.hidden = !on;
    }
    this.tabs.get(id)?.shown?.();
  }

  /** The version changed: the shown tab refreshes what depends on it (examples). */
  versionChanged(): void {
    this.tabs.get(this.active)?.shown?.();
  }
}

/** Flag a control and its error box (the panel's own look: red outline, message below). */
export function flagField(
  input: HTMLElement,
  box: HTMLElement,
  error: string | null
): void {
  box.textContent = error ?? '';
  input.classList.toggle('jp-mod-invalid', !!error);
  if (error) {
    input.setAttribute('aria-invalid', 'true');
  } else {
    input.removeAttribute('aria-invalid');
  }
}

/** A labelled field with its error box, as the panel lays out its own. */
export function fieldBox(
  name: string,
  label: string,
  ...controls: HTMLElement[]
): { node: HTMLElement; error: HTMLElement } {
  const error = h('div', { class: 'jp-SurveyPanel-error', 'data-field': name });
  const node = h(
    'div',
    { class: 'jp-SurveyPanel-field', 'data-field': name },
    h('label', {}, label),
    h('div', { class: 'jp-SurveyPanel-controls' }, ...controls),
    error
  );
  return { node, error };
}

/** One page of rows held in the browser, in the search's shape. */
export function pageOf(
  all: ISearchResult,
  offset: number,
  limit: number
): ISearchResult {
  return {
    ...all,
    offset,
    total: all.rows.length,
    rows: all.rows.slice(offset, offset + limit)
  };
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The first key of an archive ``sort`` parameter (``-snrg,obsid``: snrg, descending), or null. */
export function sortSpec(
  sort: string | undefined
): { column: string; asc: boolean } | null {
  const first = (sort ?? '').split(',')[0].trim();
  if (!first) {
    return null;
  }
  return first.startsWith('-')
    ? { column: first.slice(1), asc: false }
    : { column: first, asc: true };
}

function isMissing(value: unknown): boolean {
  return (
    value === null ||
    value === undefined ||
    value === '' ||
    (typeof value === 'number' && Number.isNaN(value))
  );
}

/**
 * Rows ordered by column ``index``: numbers as numbers, text in natural order (``J2`` before
 * ``J10``), missing values last either way, ties in their earlier order (the sort is stable).
 */
export function sortRows(rows: any[][], index: number, asc: boolean): any[][] {
  return [...rows].sort((a, b) => {
    const x = a[index];
    const y = b[index];
    if (isMissing(x) || isMissing(y)) {
      return Number(isMissing(x)) - Number(isMissing(y));
    }
    const order =
      typeof x === 'number' && typeof y === 'number'
        ? x - y
        : String(x).localeCompare(String(y), undefined, { numeric: true });
    return asc ? order : -order;
  });
}
