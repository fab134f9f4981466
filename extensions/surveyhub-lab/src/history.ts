import { h } from './dom';
import { IDestination, requestAPI } from './request';

/** One record of the archive's query history (`api/history`, passed on by the server extension). */
export interface IHistoryRecord {
  id: string;
  owner: string;
  kind: string;
  release: string | null;
  version: string | null;
  query: any;
  started: string;
  duration_s: number | null;
  rows: number | null;
  status: string;
  shared_with: string[];
}

/** What the history needs of the panel. */
export interface IHistoryHost {
  /** Put a search back into the form and run it. */
  rerun(release: string, version: string, params: Record<string, string>): void;
  spaces(): IDestination[];
  showStatus(text: string, error?: boolean): void;
}

/**
 * A search of the history as the archive's search API takes it (the record holds the checked request,
 * `SearchRequest.describe()` on the archive's side); null for records that are not form searches.
 */
export function searchParamsOf(
  record: IHistoryRecord
): Record<string, string> | null {
  let q = record.query;
  if (record.kind === 'search' && typeof q === 'string') {
    try {
      q = JSON.parse(q); // the archive keeps a search as its JSON text
    } catch {
      return null;
    }
  }
  if (record.kind !== 'search' || !q || typeof q !== 'object') {
    return null;
  }
  const params: Record<string, string> = {
    catalog: String(q.catalog ?? 'lrs')
  };
  if (q.ra !== undefined && q.dec !== undefined) {
    params.pos = `${q.ra} ${q.dec}`;
    if (q.radius_deg !== undefined) {
      params.radius = `${q.radius_deg}deg`;
    }
  }
  if (Array.isArray(q.obsids)) {
    params.obsid = q.obsids.join(',');
  }
  if (Array.isArray(q.classes) && q.classes.length) {
    params.class = q.classes.join(',');
  }
  if (q.subclass) {
    params.subclass = String(q.subclass);
  }
  for (const [name, value] of Object.entries(q.exact ?? {})) {
    params[name] = String(value);
  }
  for (const [name, range] of Object.entries(q.ranges ?? {})) {
    const [lo, hi] = range as [number | null, number | null];
    if (lo !== null && lo !== undefined) {
      params[`${name}_min`] = String(lo);
    }
    if (hi !== null && hi !== undefined) {
      params[`${name}_max`] = String(hi);
    }
  }
  for (const [band, value] of Object.entries(q.snr_min ?? {})) {
    params[`${band}_min`] = String(value);
  }
  if (Array.isArray(q.sort) && q.sort.length) {
    params.sort = q.sort.join(',');
  }
  if (Array.isArray(q.columns) && q.columns.length) {
    params.columns = q.columns.join(',');
  }
  return params;
}

/** A line of text saying what a search asked for. */
export function describeParams(params: Record<string, string>): string {
  return Object.entries(params)
    .filter(([key]) => key !== 'catalog')
    .map(([key, value]) =>
      key === 'obsid' && value.split(',').length > 3
        ? `obsid: ${value.split(',').length} obsids`
        : `${key}=${value}`
    )
    .join(' · ');
}

/**
 * The "History" tab: the user's searches and queries and those their teams shared, newest first; a search
 * is re-run in one click (the form is filled and the search runs), and one of the user's own is shared
 * with a team.
 */
export class HistoryView {
  readonly node: HTMLElement;
  private list = h('ol', { class: 'jp-SurveyPanel-historyList' });
  private user: string | null = null;

  constructor(private host: IHistoryHost) {
    this.node = h(
      'div',
      { class: 'jp-SurveyPanel-history' },
      h(
        'div',
        { class: 'jp-SurveyPanel-buttons' },
        h(
          'button',
          {
            class: 'jp-mod-styled jp-SurveyPanel-historyRefresh',
            type: 'button',
            onclick: () => void this.load()
          },
          'Refresh'
        )
      ),
      this.list
    );
  }

  /** The tab is shown: the history is read again (new searches, teammates' shares). */
  shown(): void {
    void this.load();
  }

  setUser(user: string | null): void {
    this.user = user;
  }

  async load(): Promise<void> {
    this.list.replaceChildren(h('li', {}, 'Loading the history…'));
    let records: IHistoryRecord[];
    try {
      records = (await requestAPI<{ history: IHistoryRecord[] }>('history'))
        .history;
    } catch (error) {
      this.list.replaceChildren(
        h(
          'li',
          { class: 'jp-SurveyPanel-error' },
          `No history: ${(error as Error).message}`
        )
      );
      return;
    }
    // a search asked for page by page (and counted for downloads) is one search: keep its newest record
    const seen = new Set<string>();
    const items: HTMLElement[] = [];
    for (const record of records) {
      const params = searchParamsOf(record);
      const key = JSON.stringify([
        record.owner,
        record.kind,
        record.release,
        record.version,
        params ?? record.query
      ]);
      if (seen.has(key)) {
        continue;
      }
      seen.add(key);
      items.push(this.item(record, params));
    }
    this.list.replaceChildren(
      ...(items.length
        ? items
        : [h('li', { class: 'jp-SurveyPanel-empty' }, 'No queries yet.')])
    );
  }

  private item(
    record: IHistoryRecord,
    params: Record<string, string> | null
  ): HTMLElement {
    const mine = this.user === null || record.owner === this.user;
    const when = new Date(record.started).toLocaleString();
    const what = params
      ? describeParams(params) || 'every row'
      : typeof record.query === 'string'
        ? record.query
        : JSON.stringify(record.query);
    const where = [record.release, record.version, params?.catalog]
      .filter(Boolean)
      .join(' ');
    const rerun =
      params && record.release && record.version
        ? h(
            'button',
            {
              class: 'jp-mod-styled jp-mod-accept jp-SurveyPanel-rerun',
              type: 'button',
              title: 'Fill the form with this search and run it',
              onclick: () =>
                this.host.rerun(record.release!, record.version!, params)
            },
            'Run again'
          )
        : '';
    const teams = this.host
      .spaces()
      .filter(d => d.kind === 'team')
      .map(d => d.space.replace(/^team:/, ''))
      .filter(t => !(record.shared_with ?? []).includes(t));
    const share =
      mine && teams.length
        ? h(
            'select',
            {
              class: 'jp-mod-styled jp-SurveyPanel-share',
              title: 'Share this query with a team',
              onchange: (e: Event) => {
                const team = (e.target as HTMLSelectElement).value;
                if (team) {
                  void this.share(record, team);
                }
              }
            },
            h('option', { value: '' }, 'Share with…'),
            ...teams.map(t => h('option', { value: t }, `team ${t}`))
          )
        : '';
    return h(
      'li',
      {
        class: 'jp-SurveyPanel-historyItem',
        'data-kind': record.kind,
        'data-owner': record.owner,
        'data-id': record.id
      },
      h(
        'div',
        { class: 'jp-SurveyPanel-historyHead' },
        h(
          'span',
          { class: 'jp-SurveyPanel-historyWhere' },
          where || record.kind
        ),
        ` · ${when}`,
        record.rows !== null && record.rows !== undefined
          ? ` · ${record.rows.toLocaleString()} rows`
          : '',
        mine ? '' : ` · shared by ${record.owner}`,
        record.shared_with?.length && mine
          ? ` · shared with ${record.shared_with.join(', ')}`
          : ''
      ),
      h('div', { class: 'jp-SurveyPanel-historyQuery' }, what),
      h('div', { class: 'jp-SurveyPanel-buttons' }, rerun, share)
    );
  }

  private async share(record: IHistoryRecord, team: string): Promise<void> {
    try {
      await requestAPI(
        `history/${encodeURIComponent(record.id)}/share?team=${encodeURIComponent(team)}`,
        { method: 'POST' }
      );
      this.host.showStatus(`Shared with team ${team}.`);
    } catch (error) {
      this.host.showStatus(`Not shared: ${(error as Error).message}`, true);
    }
    await this.load();
  }
}
