import { JupyterFrontEnd } from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { IActionHost, ResultActions } from './actions';
import { formatBytes, formatCell, formatSeconds, h } from './dom';
import { HistoryView, IHistoryHost } from './history';
import { IImportsHost, ImportsView, openImportFolder } from './importsTab';
import { AdqlTab } from './adql';
import { NameHint } from './resolve';
import {
  ISearchHost,
  pageOf,
  SearchTabs,
  sortRows,
  sortSpec
} from './searchTabs';
import { UploadTab } from './upload';
import { parsePixels, parseSpectrumCSV, spectrumPlot } from './plot';
import {
  ApiError,
  IDestination,
  IImportProgress,
  IRelease,
  IReleases,
  ISearchResult,
  query,
  requestAPI,
  requestBlobURL,
  requestText
} from './request';
import {
  checkFolder,
  checkNumber,
  checkPositionField,
  checkRadius,
  parseObsids,
  RADIUS_UNITS
} from './validate';

const PAGE_SIZES = [25, 50, 100];
const POLL_MS = 500;
const CLASSES = ['STAR', 'GALAXY', 'QSO', 'Unknown'];

type FieldName =
  | 'release'
  | 'pos'
  | 'radius'
  | 'obsids'
  | 'class'
  | 'snr'
  | 'zmin'
  | 'zmax'
  | 'folder';

/** Which form field a refusal of the archive names ("pos: cannot read ..."). */
const PARAM_FIELDS: Record<string, FieldName> = {
  pos: 'pos',
  ra: 'pos',
  dec: 'pos',
  radius: 'radius',
  sr: 'radius',
  obsid: 'obsids',
  class: 'class',
  snrg_min: 'snr',
  z_min: 'zmin',
  z_max: 'zmax',
  'destination.folder': 'folder'
};

/**
 * The "Survey data" side panel: pick a release version, search it, preview spectra, select rows and
 * import their files into one of your spaces.
 */
export class SurveyPanel
  extends Widget
  implements IActionHost, IHistoryHost, IImportsHost, ISearchHost
{
  /** The application's commands (set by the plugin): opens generated notebooks. */
  commands: JupyterFrontEnd['commands'] | null = null;
  private actions = new ResultActions(this);
  private history = new HistoryView(this);
  private importsTab = new ImportsView(this);
  // the other ways to search (ADQL, position-list upload) and names in the position field
  private nameHint = new NameHint();
  private adqlTab = new AdqlTab(this);
  private uploadTab = new UploadTab(this);
  private searchTabs: SearchTabs | null = null;
  /** All rows of an ADQL query or an upload, paged in the browser (null: pages come from the search). */
  private localRows: ISearchResult | null = null;
  /** How ``localRows`` are ordered (a search's order is its ``sort`` parameter). */
  private localSort: { column: string; asc: boolean } | null = null;
  private releases: IRelease[] = [];
  private destinations: IDestination[] = [];
  private params: Record<string, string> | null = null;
  private offset = 0;
  private pageSize = PAGE_SIZES[0];
  private result: ISearchResult | null = null;
  private selected = new Set<string>();
  private blobs: string[] = [];
  private previewBlob: string | null = null;
  private current: IImportProgress | null = null;
  private pollTimer: number | null = null;
  private searchSeq = 0;

  // form fields
  private releaseSelect = h('select', {
    name: 'release',
    class: 'jp-mod-styled'
  });
  private releaseInfo = h('div', { class: 'jp-SurveyPanel-releaseInfo' });
  private catalogSelect = h('select', {
    name: 'catalog',
    class: 'jp-mod-styled'
  });
  private pos = h('input', {
    name: 'pos',
    type: 'text',
    placeholder: '150.0 +2.2  or  10:00:00 +02:12:00',
    autocomplete: 'off'
  });
  private radius = h('input', { name: 'radius', type: 'text', value: '10' });
  private radiusUnit = h(
    'select',
    { name: 'radius_unit', class: 'jp-mod-styled' },
    ...Object.keys(RADIUS_UNITS).map(u =>
      h('option', { value: u, selected: u === 'arcmin' }, u)
    )
  );
  private obsids = h('textarea', {
    name: 'obsids',
    rows: 3,
    placeholder: 'obsids, one a line or separated by spaces/commas'
  });
  private cls = h(
    'select',
    { name: 'class', class: 'jp-mod-styled' },
    h('option', { value: '' }, 'any'),
    ...CLASSES.map(c => h('option', { value: c }, c))
  );
  private snr = h('input', {
    name: 'snr_min',
    type: 'text',
    placeholder: 'e.g. 10'
  });
  private zmin = h('input', {
    name: 'z_min',
    type: 'text',
    placeholder: 'min'
  });
  private zmax = h('input', {
    name: 'z_max',
    type: 'text',
    placeholder: 'max'
  });
  private errors = new Map<FieldName, HTMLElement>();
  private inputs = new Map<FieldName, HTMLElement>();

  // results
  private status = h('div', { class: 'jp-SurveyPanel-status', role: 'status' });
  private summary = h('div', { class: 'jp-SurveyPanel-summary' });
  private pager = h('div', { class: 'jp-SurveyPanel-pager' });
  private selectionBar = h('div', { class: 'jp-SurveyPanel-selection' });
  private table = h('table', { class: 'jp-SurveyPanel-table' });
  private preview = h('div', { class: 'jp-SurveyPanel-preview' });

  // import
  private destSelect = h('select', {
    name: 'destination',
    class: 'jp-mod-styled'
  });
  private folder = h('input', { name: 'folder', type: 'text' });
  private importButton = h(
    'button',
    {
      class: 'jp-mod-styled jp-mod-accept jp-SurveyPanel-import',
      type: 'button',
      disabled: true
    },
    'Import'
  );
  private progress = h('div', {
    class: 'jp-SurveyPanel-progress',
    hidden: true
  });

  constructor() {
    super();
    this.id = 'surveyhub-panel';
    this.addClass('jp-SurveyPanel');
    this.title.caption = 'Survey data';
    this.build();
    void this.load();
  }

  dispose(): void {
    this.stopPolling();
    this.importsTab.stop();
    this.revokeBlobs();
    super.dispose();
  }

  // ---- layout ----

  private field(
    name: FieldName,
    label: string,
    ...controls: HTMLElement[]
  ): HTMLElement {
    const error = h('div', {
      class: 'jp-SurveyPanel-error',
      'data-field': name
    });
    this.errors.set(name, error);
    this.inputs.set(name, controls[0]);
    return h(
      'div',
      { class: 'jp-SurveyPanel-field', 'data-field': name },
      h('label', {}, label),
      h('div', { class: 'jp-SurveyPanel-controls' }, ...controls),
      error
    );
  }

  private build(): void {
    const node = this.node;
    this.releaseSelect.addEventListener('change', () => this.onRelease());
    this.folder.addEventListener('input', () => this.flag('folder', null));
    for (const [name, el] of [
      ['pos', this.pos],
      ['radius', this.radius],
      ['obsids', this.obsids],
      ['snr', this.snr],
      ['zmin', this.zmin],
      ['zmax', this.zmax]
    ] as [FieldName, HTMLElement][]) {
      el.addEventListener('input', () => this.flag(name, null));
    }
    const form = h(
      'form',
      {
        class: 'jp-SurveyPanel-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this.search();
        }
      },
      this.field('pos', 'Position (RA Dec) or LAMOST designation', this.pos),
      this.nameHint.node,
      this.field('radius', 'Radius', this.radius, this.radiusUnit),
      this.field('obsids', 'Obsids', this.obsids),
      this.field('class', 'Class', this.cls),
      this.field('snr', 'SNR (g) at least', this.snr),
      h(
        'div',
        { class: 'jp-SurveyPanel-pair' },
        this.field('zmin', 'Redshift from', this.zmin),
        this.field('zmax', 'to', this.zmax)
      ),
      h(
        'div',
        { class: 'jp-SurveyPanel-buttons' },
        h(
          'button',
          {
            class: 'jp-mod-styled jp-mod-accept jp-SurveyPanel-search',
            type: 'submit'
          },
          'Search'
        ),
        h(
          'button',
          {
            class: 'jp-mod-styled jp-mod-reject',
            type: 'button',
            onclick: () => this.resetForm()
          },
          'Clear'
        )
      )
    );
    this.importButton.addEventListener('click', () => void this.startImport());
    node.append(
      h('h2', { class: 'jp-SurveyPanel-title' }, 'Survey data'),
      h(
        'section',
        { class: 'jp-SurveyPanel-release' },
        this.field('release', 'Release', this.releaseSelect),
        h(
          'div',
          { class: 'jp-SurveyPanel-field' },
          h('label', {}, 'Catalog'),
          h('div', { class: 'jp-SurveyPanel-controls' }, this.catalogSelect)
        ),
        this.releaseInfo
      ),
      this.searchForms(form),
      this.status,
      h(
        'section',
        { class: 'jp-SurveyPanel-results' },
        this.summary,
        this.actions.node,
        this.pager,
        this.selectionBar,
        h('div', { class: 'jp-SurveyPanel-tableWrap' }, this.table)
      ),
      this.preview,
      h(
        'section',
        { class: 'jp-SurveyPanel-importBox' },
        h('h3', {}, 'Import selected spectra'),
        h(
          'div',
          { class: 'jp-SurveyPanel-field' },
          h('label', {}, 'Into'),
          h('div', { class: 'jp-SurveyPanel-controls' }, this.destSelect)
        ),
        this.field('folder', 'Folder', this.folder),
        h('div', { class: 'jp-SurveyPanel-buttons' }, this.importButton),
        this.progress
      )
    );
    this.renderSelection();
  }

  // ---- loading ----

  private async load(): Promise<void> {
    this.setStatus('Loading releases…');
    try {
      const [releases, dests] = await Promise.all([
        requestAPI<IReleases>('releases'),
        requestAPI<{ destinations: IDestination[] }>('destinations')
      ]);
      this.releases = releases.releases ?? [];
      this.history.setUser(releases.user ?? null);
      this.destinations = dests.destinations ?? [];
    } catch (error) {
      this.setStatus(`Cannot reach the archive: ${message(error)}`, true);
      return;
    }
    this.releaseSelect.replaceChildren(
      ...this.releases.map((r, i) =>
        h(
          'option',
          { value: String(i) },
          `${r.release} ${r.version}${r.title ? ` – ${r.title}` : ''}`
        )
      )
    );
    // the newest version first is the archive's order; pick the last listed version of the first release
    this.destSelect.replaceChildren(
      ...this.destinations.map(d => h('option', { value: d.space }, d.label))
    );
    if (!this.releases.length) {
      this.setStatus('No release version is readable with your account.', true);
      return;
    }
    this.onRelease();
    this.setStatus('');
  }

  private get release(): IRelease | null {
    return this.releases[Number(this.releaseSelect.value)] ?? null;
  }

  private onRelease(): void {
    const r = this.release;
    if (!r) {
      return;
    }
    const catalogs = Object.keys(r.catalogs ?? {});
    const names = catalogs.length ? catalogs : ['lrs'];
    this.catalogSelect.replaceChildren(
      ...names.map(c =>
        h(
          'option',
          { value: c, selected: c === 'lrs' },
          r.catalogs?.[c]?.title ? `${c} – ${r.catalogs[c].title}` : c
        )
      )
    );
    const counts = Object.entries(r.counts ?? {})
      .map(
        ([k, v]) => `${k}: ${typeof v === 'number' ? v.toLocaleString() : v}`
      )
      .join(' · ');
    this.releaseInfo.replaceChildren(
      r.description
        ? h('p', { class: 'jp-SurveyPanel-description' }, r.description)
        : '',
      counts ? h('p', { class: 'jp-SurveyPanel-counts' }, counts) : '',
      r.policy
        ? h('p', { class: 'jp-SurveyPanel-policy' }, `Access: ${r.policy}`)
        : ''
    );
    this.folder.value = `imports/${r.release}-${r.version}-${stamp()}`;
    this.searchTabs?.versionChanged();
  }

  // ---- the search ----

  private flag(name: FieldName, error: string | null): void {
    const box = this.errors.get(name);
    const input = this.inputs.get(name);
    if (box) {
      box.textContent = error ?? '';
    }
    if (input) {
      input.classList.toggle('jp-mod-invalid', !!error);
      if (error) {
        input.setAttribute('aria-invalid', 'true');
      } else {
        input.removeAttribute('aria-invalid');
      }
    }
  }

  /** The search parameters of the form, or null with the invalid fields flagged. */
  private readForm(): Record<string, string> | null {
    const r = this.release;
    let ok = true;
    const set = (name: FieldName, error: string | null) => {
      this.flag(name, error);
      ok = ok && !error;
    };
    set('release', r ? null : 'no release version to search');
    const params: Record<string, string> = {};
    if (r) {
      params.release = r.release;
      params.version = r.version;
      params.catalog = this.catalogSelect.value || 'lrs';
    }
    const pos = this.pos.value.trim();
    if (pos) {
      set('pos', checkPositionField(pos));
      const radiusError = checkRadius(this.radius.value, this.radiusUnit.value);
      set('radius', radiusError);
      params.pos = pos;
      params.radius = `${this.radius.value.trim()}${this.radiusUnit.value}`;
    } else {
      set('pos', null);
      set('radius', null);
    }
    const ids = this.obsids.value.trim();
    if (ids) {
      const parsed = parseObsids(ids);
      set('obsids', typeof parsed === 'string' ? parsed : null);
      if (typeof parsed !== 'string') {
        params.obsid = parsed.join(',');
      }
    } else {
      set('obsids', null);
    }
    if (this.cls.value) {
      params.class = this.cls.value;
    }
    set('snr', checkNumber(this.snr.value, { min: 0 }));
    params.snrg_min = this.snr.value.trim();
    const zminError = checkNumber(this.zmin.value, { min: -1 });
    const zmaxError = checkNumber(this.zmax.value, { min: -1 });
    set('zmin', zminError);
    set('zmax', zmaxError);
    if (
      !zminError &&
      !zmaxError &&
      this.zmin.value.trim() &&
      this.zmax.value.trim() &&
      Number(this.zmin.value) > Number(this.zmax.value)
    ) {
      set('zmax', 'must not be below the lower bound');
    }
    params.z_min = this.zmin.value.trim();
    params.z_max = this.zmax.value.trim();
    for (const key of Object.keys(params)) {
      if (!params[key]) {
        delete params[key];
      }
    }
    return ok ? params : null;
  }

  private resetForm(): void {
    for (const el of [this.pos, this.obsids, this.snr, this.zmin, this.zmax]) {
      el.value = '';
    }
    this.radius.value = '10';
    this.cls.value = '';
    for (const name of this.errors.keys()) {
      this.flag(name, null);
    }
  }

  private async search(): Promise<void> {
    const params = this.readForm();
    if (!params) {
      this.setStatus('Fix the fields marked in red.', true);
      return;
    }
    this.params = params;
    this.localRows = null;
    this.offset = 0;
    this.selected.clear();
    this.clearPreview();
    void this.nameHint.update(
      this.release,
      params.catalog ?? 'lrs',
      params.pos ?? ''
    );
    await this.fetchPage();
  }

  // ---- the other ways to search (src/searchTabs.ts, src/adql.ts, src/upload.ts) ----

  private searchForms(form: HTMLElement): HTMLElement {
    this.searchTabs = new SearchTabs([
      { id: 'search', label: 'Search', body: form },
      { id: 'adql', label: 'ADQL', body: this.adqlTab.node, tab: this.adqlTab },
      { id: 'upload', label: 'Upload list', body: this.uploadTab.node },
      {
        id: 'history',
        label: 'History',
        body: this.history.node,
        tab: this.history
      },
      {
        id: 'imports',
        label: 'Imports',
        body: this.importsTab.node,
        tab: this.importsTab
      }
    ]);
    return this.searchTabs.node;
  }

  searchVersion(): IRelease | null {
    return this.release;
  }

  searchCatalog(): string {
    return this.catalogSelect.value || 'lrs';
  }

  showRows(result: ISearchResult, note = ''): void {
    this.searchSeq++;
    this.params = null;
    this.localRows = result;
    this.localSort = null;
    this.offset = 0;
    this.selected.clear();
    this.clearPreview();
    this.result = pageOf(result, 0, this.pageSize);
    this.setStatus(note);
    this.renderResults();
  }

  private async fetchPage(): Promise<void> {
    if (!this.params) {
      if (this.localRows) {
        this.result = pageOf(this.localRows, this.offset, this.pageSize);
        this.renderResults();
      }
      return;
    }
    const seq = ++this.searchSeq;
    this.setStatus('Searching…');
    this.node.classList.add('jp-mod-searching');
    try {
      const result = await requestAPI<ISearchResult>(
        'search' +
          query({
            ...this.params,
            offset: String(this.offset),
            limit: String(this.pageSize)
          })
      );
      if (seq !== this.searchSeq) {
        return;
      }
      this.result = result;
      this.setStatus('');
      this.renderResults();
    } catch (error) {
      if (seq !== this.searchSeq) {
        return;
      }
      const text = message(error);
      const param = /^([a-z_.]+):/.exec(text)?.[1];
      if (param && PARAM_FIELDS[param]) {
        this.flag(PARAM_FIELDS[param], text.slice(param.length + 1).trim());
      }
      this.setStatus(`Search refused: ${text}`, true);
    } finally {
      if (seq === this.searchSeq) {
        this.node.classList.remove('jp-mod-searching');
      }
    }
  }

  // ---- results ----

  private revokeBlobs(): void {
    for (const u of this.blobs) {
      URL.revokeObjectURL(u);
    }
    this.blobs = [];
  }

  private spectrumPath(obsid: string, product: string): string {
    const r = this.result!;
    return ['spectra', r.release, r.version, obsid, product]
      .map(encodeURIComponent)
      .join('/');
  }

  private renderResults(): void {
    const res = this.result;
    this.revokeBlobs();
    if (!res) {
      return;
    }
    const total = res.total ?? null;
    const count = res.rows.length;
    const first = count ? res.offset + 1 : 0;
    const last = res.offset + count;
    this.summary.replaceChildren(
      h(
        'span',
        { class: 'jp-SurveyPanel-total', 'data-total': total ?? '' },
        total === null ? `${count} rows` : `${total.toLocaleString()} rows`
      ),
      ` in ${res.release} ${res.version} ${res.catalog}`
    );
    const prev = h(
      'button',
      {
        class: 'jp-mod-styled jp-SurveyPanel-prev',
        type: 'button',
        disabled: res.offset <= 0,
        onclick: () => {
          this.offset = Math.max(0, this.offset - this.pageSize);
          void this.fetchPage();
        }
      },
      '‹ Previous'
    );
    const next = h(
      'button',
      {
        class: 'jp-mod-styled jp-SurveyPanel-next',
        type: 'button',
        disabled: total === null ? count < this.pageSize : last >= total,
        onclick: () => {
          this.offset += this.pageSize;
          void this.fetchPage();
        }
      },
      'Next ›'
    );
    const size = h(
      'select',
      {
        class: 'jp-mod-styled',
        name: 'page_size',
        onchange: (e: Event) => {
          this.pageSize = Number((e.target as HTMLSelectElement).value);
          this.offset = 0;
          void this.fetchPage();
        }
      },
      ...PAGE_SIZES.map(n =>
        h(
          'option',
          { value: String(n), selected: n === this.pageSize },
          `${n} a page`
        )
      )
    );
    this.pager.replaceChildren(
      prev,
      h(
        'span',
        { class: 'jp-SurveyPanel-range' },
        `${first}–${last}${total === null ? '' : ` of ${total.toLocaleString()}`}`
      ),
      next,
      size
    );

    const sort = this.currentSort();
    const obsidIndex = res.columns.findIndex(c => c.name === 'obsid');
    const zIndex = res.columns.findIndex(c => c.name === 'z');
    const pageIds =
      obsidIndex < 0 ? [] : res.rows.map(row => String(row[obsidIndex]));
    const all = h('input', {
      type: 'checkbox',
      class: 'jp-SurveyPanel-selectPage',
      title: 'Select the rows of this page',
      checked: pageIds.length > 0 && pageIds.every(o => this.selected.has(o)),
      onchange: (e: Event) => {
        const on = (e.target as HTMLInputElement).checked;
        for (const o of pageIds) {
          if (on) {
            this.selected.add(o);
          } else {
            this.selected.delete(o);
          }
        }
        this.renderResults();
      }
    });
    const head = h(
      'tr',
      {},
      h('th', {}, all),
      h('th', {}, ''),
      ...res.columns.map(c => {
        const order = sort?.column === c.name ? sort : null;
        return h(
          'th',
          {
            class: 'jp-SurveyPanel-sortable',
            'data-column': c.name,
            'aria-sort': order
              ? order.asc
                ? 'ascending'
                : 'descending'
              : 'none',
            title: [
              c.description,
              c.unit ? `[${c.unit}]` : '',
              `(click to sort${order?.asc ? ', descending' : ''})`
            ]
              .filter(Boolean)
              .join(' '),
            onclick: () => this.sortBy(c.name)
          },
          c.name + (order ? (order.asc ? ' ▲' : ' ▼') : '')
        );
      })
    );
    const body = res.rows.map((row, i) => {
      const obsid = pageIds[i];
      const check = h('input', {
        type: 'checkbox',
        class: 'jp-SurveyPanel-select',
        checked: obsid !== undefined && this.selected.has(obsid),
        disabled: obsid === undefined,
        onclick: (e: Event) => e.stopPropagation(),
        onchange: (e: Event) => {
          if ((e.target as HTMLInputElement).checked) {
            this.selected.add(obsid);
          } else {
            this.selected.delete(obsid);
          }
          tr.classList.toggle('jp-mod-selected', this.selected.has(obsid));
          all.checked = pageIds.every(o => this.selected.has(o));
          this.renderSelection();
        }
      });
      const thumb = h('img', {
        class: 'jp-SurveyPanel-thumb',
        alt: '',
        width: 96,
        height: 32
      });
      if (obsid !== undefined) {
        requestBlobURL(this.spectrumPath(obsid, 'thumb'))
          .then(u => {
            this.blobs.push(u);
            thumb.src = u;
          })
          .catch(() => thumb.classList.add('jp-mod-missing'));
      }
      const tr = h(
        'tr',
        {
          class: [
            'jp-SurveyPanel-row',
            obsid !== undefined && this.selected.has(obsid)
              ? 'jp-mod-selected'
              : ''
          ].join(' '),
          'data-obsid': obsid ?? '',
          onclick: () =>
            obsid !== undefined &&
            void this.showPreview(
              obsid,
              tr,
              zIndex < 0 ? undefined : row[zIndex]
            )
        },
        h('td', { class: 'jp-SurveyPanel-checkCell' }, check),
        h('td', { class: 'jp-SurveyPanel-thumbCell' }, thumb),
        ...row.map(v => h('td', {}, formatCell(v)))
      );
      return tr;
    });
    this.table.replaceChildren(h('thead', {}, head), h('tbody', {}, ...body));
    if (!res.rows.length) {
      this.table.replaceChildren(
        h(
          'tbody',
          {},
          h(
            'tr',
            {},
            h('td', { class: 'jp-SurveyPanel-empty' }, 'No rows match.')
          )
        )
      );
    }
    this.renderSelection();
    this.actions.update();
  }

  /** The order the grid shows: the search's first ``sort`` key, or how the local rows were sorted. */
  private currentSort(): { column: string; asc: boolean } | null {
    return this.params ? sortSpec(this.params.sort) : this.localSort;
  }

  /**
   * Order the results by ``column`` (ascending, or descending when it is already ascending). A search
   * asks the archive again from its first page, so the order covers every matching row, not only the
   * page; ADQL and upload rows are all in the browser and are sorted here. The selection is kept.
   */
  private sortBy(column: string): void {
    const now = this.currentSort();
    const asc = !(now?.column === column && now.asc);
    this.offset = 0;
    this.clearPreview();
    if (this.params) {
      this.params = { ...this.params, sort: (asc ? '' : '-') + column };
      void this.fetchPage();
      return;
    }
    if (!this.localRows) {
      return;
    }
    const index = this.localRows.columns.findIndex(c => c.name === column);
    if (index < 0) {
      return;
    }
    this.localSort = { column, asc };
    this.localRows = {
      ...this.localRows,
      rows: sortRows(this.localRows.rows, index, asc)
    };
    this.result = pageOf(this.localRows, 0, this.pageSize);
    this.renderResults();
  }

  // ---- what the result actions and the history use ----

  searchParams(): Record<string, string> | null {
    return this.params;
  }

  currentResult(): ISearchResult | null {
    return this.result;
  }

  selection(): Set<string> {
    return this.selected;
  }

  selectionChanged(): void {
    this.renderResults();
  }

  lastImport(): IImportProgress | null {
    return this.current;
  }

  showStatus(text: string, error = false): void {
    this.setStatus(text, error);
  }

  spaces(): IDestination[] {
    return this.destinations;
  }

  /** Fill the form with a search of the history and run it (constraints the form lacks still apply). */
  rerun(
    release: string,
    version: string,
    params: Record<string, string>
  ): void {
    const index = this.releases.findIndex(
      r => r.release === release && r.version === version
    );
    if (index < 0) {
      this.setStatus(
        `${release} ${version} is not readable with your account.`,
        true
      );
      return;
    }
    this.releaseSelect.value = String(index);
    this.onRelease();
    this.searchTabs?.show('search');
    this.resetForm();
    const rest = { ...params };
    this.catalogSelect.value = rest.catalog ?? 'lrs';
    if (rest.pos) {
      this.pos.value = rest.pos;
      const radius = /^([0-9.eE+-]+)\s*(deg|arcmin|arcsec)?$/.exec(
        rest.radius ?? ''
      );
      if (radius) {
        this.radius.value = radius[1];
        this.radiusUnit.value = radius[2] ?? 'deg';
      }
    }
    this.obsids.value = (rest.obsid ?? '')
      .split(',')
      .filter(Boolean)
      .join('\n');
    if (rest.class && CLASSES.includes(rest.class)) {
      this.cls.value = rest.class;
      delete rest.class;
    }
    this.snr.value = rest.snrg_min ?? '';
    this.zmin.value = rest.z_min ?? '';
    this.zmax.value = rest.z_max ?? '';
    for (const key of [
      'catalog',
      'pos',
      'radius',
      'obsid',
      'snrg_min',
      'z_min',
      'z_max'
    ]) {
      delete rest[key];
    }
    const form = this.readForm();
    if (!form) {
      this.setStatus(
        'That search no longer fits the form: fix the fields marked in red.',
        true
      );
      return;
    }
    this.params = { ...form, ...rest };
    this.offset = 0;
    this.selected.clear();
    this.clearPreview();
    void this.fetchPage().then(() => {
      const extra = Object.entries(rest).map(([k, v]) => `${k}=${v}`);
      if (extra.length && !this.status.classList.contains('jp-mod-error')) {
        this.setStatus(
          `Run again, with ${extra.join(', ')} (not in the form).`
        );
      }
    });
  }

  private renderSelection(): void {
    const n = this.selected.size;
    this.selectionBar.replaceChildren(
      h(
        'span',
        { class: 'jp-SurveyPanel-selectedCount', 'data-count': n },
        `${n} selected`
      ),
      n
        ? h(
            'button',
            {
              class: 'jp-mod-styled jp-SurveyPanel-clearSelection',
              type: 'button',
              onclick: () => {
                this.selected.clear();
                this.renderResults();
              }
            },
            'Clear selection'
          )
        : ''
    );
    const busy = !!this.current && isActive(this.current.status);
    this.importButton.disabled = n === 0 || busy || !this.destinations.length;
    this.importButton.textContent = n ? `Import ${n} spectra` : 'Import';
  }

  // ---- preview ----

  private clearPreview(): void {
    if (this.previewBlob) {
      URL.revokeObjectURL(this.previewBlob);
      this.previewBlob = null;
    }
    this.preview.replaceChildren();
  }

  /**
   * Preview a spectrum: the interactive plot of its `pixels` (the `csv`, flux only, when that fails), with
   * line markers at `z` (the row's catalog redshift; the `info` row's when the table has no `z` column),
   * the archive's `png` and the scalar fields of `info`.
   */
  private async showPreview(
    obsid: string,
    row: HTMLElement,
    z?: unknown
  ): Promise<void> {
    for (const r of Array.from(
      this.table.querySelectorAll('tr.jp-mod-active')
    )) {
      r.classList.remove('jp-mod-active');
    }
    row.classList.add('jp-mod-active');
    this.clearPreview();
    const img = h('img', {
      class: 'jp-SurveyPanel-spectrum',
      alt: `spectrum of ${obsid}`
    });
    const info = h('dl', { class: 'jp-SurveyPanel-info' });
    const plot = h(
      'div',
      { class: 'jp-SurveyPanel-plot' },
      'Loading the spectrum…'
    );
    this.preview.append(
      h(
        'div',
        { class: 'jp-SurveyPanel-previewHead' },
        h('h3', {}, `Spectrum ${obsid}`),
        h(
          'button',
          {
            class: 'jp-mod-styled jp-SurveyPanel-closePreview',
            type: 'button',
            title: 'Close the preview',
            onclick: () => {
              row.classList.remove('jp-mod-active');
              this.clearPreview();
            }
          },
          '×'
        )
      ),
      plot,
      img,
      info
    );
    this.preview.dataset.obsid = obsid;
    const infoRequest = requestAPI<Record<string, any>>(
      this.spectrumPath(obsid, 'info')
    ).catch(() => null);
    requestAPI<Record<string, any>>(this.spectrumPath(obsid, 'pixels'))
      .then(parsePixels)
      .catch(async () =>
        parseSpectrumCSV(await requestText(this.spectrumPath(obsid, 'csv')))
      )
      .then(async spec => {
        const redshift = z === undefined ? (await infoRequest)?.z : z;
        if (this.preview.dataset.obsid === obsid) {
          plot.replaceWith(spectrumPlot(spec, { z: redshift }));
        }
      })
      .catch(error => {
        plot.textContent = `No interactive plot: ${message(error)}`;
      });
    try {
      const u = await requestBlobURL(this.spectrumPath(obsid, 'png'));
      if (this.preview.dataset.obsid !== obsid) {
        URL.revokeObjectURL(u);
        return;
      }
      this.previewBlob = u;
      img.src = u;
    } catch (error) {
      img.replaceWith(
        h(
          'p',
          { class: 'jp-SurveyPanel-error' },
          `No preview: ${message(error)}`
        )
      );
    }
    try {
      const meta = await infoRequest;
      const flat = Object.entries(meta ?? {}).filter(
        ([, v]) => v === null || typeof v !== 'object'
      );
      info.replaceChildren(
        ...flat
          .slice(0, 16)
          .flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, formatCell(v))])
      );
    } catch {
      // the picture is the preview; its details are a bonus
    }
  }

  // ---- import ----

  private async startImport(): Promise<void> {
    const r = this.result;
    const folderError = checkFolder(this.folder.value);
    this.flag('folder', folderError);
    if (folderError || !r || !this.selected.size) {
      return;
    }
    const body = {
      release: r.release,
      version: r.version,
      obsids: Array.from(this.selected, o => Number(o)),
      destination: {
        space: this.destSelect.value,
        folder: this.folder.value.trim()
      },
      query: { ...(this.params ?? {}), catalog: r.catalog }
    };
    this.importButton.disabled = true;
    try {
      const progress = await requestAPI<IImportProgress>('imports', {
        method: 'POST',
        body: JSON.stringify(body)
      });
      this.followImport(progress);
    } catch (error) {
      const text = message(error);
      if (error instanceof ApiError && error.code?.startsWith('destination_')) {
        this.flag('folder', text);
      }
      this.setStatus(`Import refused: ${text}`, true);
      this.renderSelection();
    }
  }

  /** Show an import's progress bar and follow it (a new import, or one resumed in the Imports tab). */
  followImport(progress: IImportProgress): void {
    this.current = progress;
    this.renderProgress();
    this.renderSelection();
    this.progress.scrollIntoView({ block: 'nearest' });
    this.poll();
    this.importsTab.changed();
  }

  private poll(): void {
    this.stopPolling();
    this.pollTimer = window.setTimeout(async () => {
      const id = this.current?.id;
      if (!id) {
        return;
      }
      try {
        this.current = await requestAPI<IImportProgress>(
          `imports/${encodeURIComponent(id)}`
        );
      } catch (error) {
        this.setStatus(`Cannot follow the import: ${message(error)}`, true);
      }
      this.renderProgress();
      if (this.current && isActive(this.current.status)) {
        this.poll();
      } else if (this.current) {
        this.finished(this.current);
      }
    }, POLL_MS);
  }

  private stopPolling(): void {
    if (this.pollTimer !== null) {
      window.clearTimeout(this.pollTimer);
      this.pollTimer = null;
    }
  }

  private async cancelImport(): Promise<void> {
    const id = this.current?.id;
    if (!id) {
      return;
    }
    this.stopPolling();
    if (this.current) {
      this.current = { ...this.current, status: 'cancelling' };
      this.renderProgress();
    }
    try {
      this.current = await requestAPI<IImportProgress>(
        `imports/${encodeURIComponent(id)}`,
        {
          method: 'DELETE'
        }
      );
    } catch (error) {
      this.setStatus(`Cancel refused: ${message(error)}`, true);
    }
    this.renderProgress();
    if (this.current && isActive(this.current.status)) {
      this.poll();
    } else if (this.current) {
      this.finished(this.current);
    }
  }

  private finished(p: IImportProgress): void {
    const where =
      this.destinations.find(d => d.space === p.destination?.space)?.label ??
      '';
    // the folder's link: it opens the folder in the file browser (src/importsTab.ts)
    const actions = p.path
      ? [
          {
            label: 'Open folder',
            caption: `Open ${p.path} in the file browser`,
            callback: () => {
              openImportFolder(this.commands, p.path).catch(error =>
                this.setStatus(`Cannot open ${p.path}: ${message(error)}`, true)
              );
            }
          }
        ]
      : [];
    if (p.status === 'completed') {
      Notification.success(
        `Imported ${p.files_done} spectra into ${where ? `${where}: ` : ''}${p.folder}`,
        { autoClose: 8000, actions }
      );
      const r = this.release;
      if (r) {
        this.folder.value = `imports/${r.release}-${r.version}-${stamp()}`;
      }
    } else if (p.status === 'cancelled') {
      Notification.info(`Import into ${p.folder} cancelled`, {
        autoClose: 5000
      });
    } else {
      Notification.error(
        `Import into ${p.folder} ${p.status}: ${p.error ?? ''}`,
        {
          autoClose: false
        }
      );
    }
    this.renderSelection();
  }

  private renderProgress(): void {
    const p = this.current;
    if (!p) {
      this.progress.hidden = true;
      return;
    }
    this.progress.hidden = false;
    const fraction = p.bytes_total
      ? p.bytes_done / p.bytes_total
      : p.files_total
        ? p.files_done / p.files_total
        : 0;
    const active = isActive(p.status);
    const bar = h('progress', {
      class: 'jp-SurveyPanel-bar',
      max: 1,
      value: Math.min(1, fraction)
    });
    const lines = [
      h(
        'div',
        { class: 'jp-SurveyPanel-progressStatus', 'data-status': p.status },
        `${statusText(p.status)} – ${Math.round(fraction * 100)}%`
      ),
      bar,
      h(
        'div',
        { class: 'jp-SurveyPanel-progressFiles' },
        `${p.files_done} of ${p.files_total} files` +
          (p.files_failed ? `, ${p.files_failed} failed` : '') +
          ` · ${formatBytes(p.bytes_done)} of ${formatBytes(p.bytes_total)}`
      ),
      h(
        'div',
        { class: 'jp-SurveyPanel-progressRate' },
        active
          ? `${formatBytes(p.rate_bytes_per_s)}/s · ${formatSeconds(p.eta_s)} left`
          : `took ${formatSeconds(p.elapsed_s)}`
      ),
      h(
        'div',
        { class: 'jp-SurveyPanel-progressFolder' },
        `Folder: ${p.folder}`
      ),
      p.error ? h('div', { class: 'jp-SurveyPanel-error' }, p.error) : '',
      active
        ? h(
            'button',
            {
              class: 'jp-mod-styled jp-mod-warn jp-SurveyPanel-cancel',
              type: 'button',
              disabled: p.status === 'cancelling',
              onclick: () => void this.cancelImport()
            },
            'Cancel'
          )
        : ''
    ];
    this.progress.replaceChildren(...lines);
  }

  private setStatus(text: string, error = false): void {
    this.status.textContent = text;
    this.status.classList.toggle('jp-mod-error', error);
  }
}

function isActive(status: string): boolean {
  return status === 'running' || status === 'cancelling';
}

function statusText(status: string): string {
  return (
    {
      running: 'Copying',
      cancelling: 'Cancelling',
      cancelled: 'Cancelled',
      completed: 'Done',
      failed: 'Failed',
      interrupted: 'Interrupted'
    }[status] ?? status
  );
}

function message(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}

function stamp(): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
