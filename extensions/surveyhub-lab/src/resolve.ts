import { h } from './dom';
import { IRelease, query, requestAPI } from './request';
import { parseDesignation } from './validate';

/** Where the server resolved the position field's text (`GET surveyhub/resolve`). */
export interface IResolved {
  kind: 'coordinates' | 'catalog' | 'name';
  ra: number;
  dec: number;
  name?: string;
  obsid?: number;
  note?: string;
}

/**
 * A line under the position field saying where a LAMOST designation points: its catalog row (obsid and
 * position), or, when the version has no such row, the position read from the name. The search itself
 * is resolved by the server too (`surveyhub/search?pos=<designation>`), so this only informs.
 */
export class NameHint {
  readonly node = h('div', {
    class: 'jp-SurveyPanel-hint',
    'data-field': 'pos'
  });
  private seq = 0;

  clear(): void {
    this.seq++;
    this.node.textContent = '';
  }

  /** Show where `text` points in `version`'s `catalog` (nothing for plain coordinates). */
  async update(
    version: IRelease | null,
    catalog: string,
    text: string
  ): Promise<void> {
    this.clear();
    if (!version || !parseDesignation(text)) {
      return;
    }
    const seq = this.seq;
    try {
      const where = await requestAPI<IResolved>(
        'resolve' +
          query({
            release: version.release,
            version: version.version,
            catalog,
            pos: text
          })
      );
      if (seq !== this.seq) {
        return;
      }
      const at = `${where.ra.toFixed(6)} ${where.dec >= 0 ? '+' : ''}${where.dec.toFixed(6)}`;
      this.node.textContent =
        where.kind === 'catalog'
          ? `${where.name} → ${at} (obsid ${where.obsid})`
          : `${where.name} → ${at}: ${where.note ?? 'read from the name'}`;
    } catch {
      // the search reports the same refusal at the field
    }
  }
}
