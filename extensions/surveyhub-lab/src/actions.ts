import { JupyterFrontEnd } from '@jupyterlab/application';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { h } from './dom';
import { IImportProgress, ISearchResult, query, requestAPI } from './request';

/** The table formats of "Download table" (the server extension's `download` route). */
export const DOWNLOAD_FORMATS: [string, string][] = [
  ['csv', 'CSV'],
  ['votable', 'VOTable'],
  ['parquet', 'Parquet']
];

/** What the result actions need of the panel. */
export interface IActionHost {
  /** The current search's parameters (release, version, catalog, conditions), null before a search. */
  searchParams(): Record<string, string> | null;
  currentResult(): ISearchResult | null;
  /** The selected obsids (the whole selection, every page). */
  selection(): Set<string>;
  /** Redraw the rows and the selection after the selection changed. */
  selectionChanged(): void;
  /** The last import of this panel, if any. */
  lastImport(): IImportProgress | null;
  showStatus(text: string, error?: boolean): void;
  commands: JupyterFrontEnd['commands'] | null;
}

interface INotebookAnswer {
  path: string;
  total: number;
  adql: string | null;
}

/**
 * The result actions under the table: download the whole table, open the search in a notebook, select
 * every matching row.
 */
export class ResultActions {
  readonly node: HTMLElement;
  private format = h(
    'select',
    { name: 'download_format', class: 'jp-mod-styled' },
    ...DOWNLOAD_FORMATS.map(([value, label]) => h('option', { value }, label))
  );
  private notebookFolder = h('input', {
    name: 'notebook_folder',
    type: 'text',
    placeholder: "the import's folder, or your home"
  });
  private selectAllButton = h(
    'button',
    { class: 'jp-mod-styled jp-SurveyPanel-selectAll', type: 'button' },
    'Select all matching'
  );
  private maxObsids: number | null = null;

  constructor(private host: IActionHost) {
    const download = h(
      'button',
      {
        class: 'jp-mod-styled jp-SurveyPanel-download',
        type: 'button',
        onclick: () => this.download()
      },
      'Download table'
    );
    const notebook = h(
      'button',
      {
        class: 'jp-mod-styled jp-SurveyPanel-openNotebook',
        type: 'button',
        onclick: () => void this.openNotebook()
      },
      'Open in notebook'
    );
    this.selectAllButton.addEventListener(
      'click',
      () => void this.selectAllMatching()
    );
    this.node = h(
      'div',
      { class: 'jp-SurveyPanel-actions', hidden: true },
      h(
        'div',
        { class: 'jp-SurveyPanel-buttons' },
        this.selectAllButton,
        download,
        this.format,
        notebook
      ),
      h(
        'div',
        { class: 'jp-SurveyPanel-field' },
        h('label', {}, 'Notebook folder'),
        h('div', { class: 'jp-SurveyPanel-controls' }, this.notebookFolder)
      )
    );
  }

  /** Show the actions for a new page of results. */
  update(): void {
    const res = this.host.currentResult();
    // the actions reproduce a search of the Search tab; rows of an ADQL query or an upload have none
    this.node.hidden = !res || !this.host.searchParams();
    const total = res?.total ?? null;
    this.selectAllButton.textContent =
      total === null
        ? 'Select all matching'
        : `Select all ${total.toLocaleString()} matching`;
  }

  /** The search as the archive takes it: the panel's parameters without release, version and paging. */
  private search(): Record<string, string> | null {
    const params = this.host.searchParams();
    if (!params) {
      return null;
    }
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(params)) {
      if (!['release', 'version', 'offset', 'limit'].includes(key)) {
        out[key] = value;
      }
    }
    return out;
  }

  /** The browser downloads the route's answer itself, streaming it to disk (no copy in memory here). */
  private download(): void {
    const params = this.host.searchParams();
    if (!params) {
      return;
    }
    const settings = ServerConnection.makeSettings();
    const href =
      URLExt.join(settings.baseUrl, 'surveyhub', 'download') +
      query({
        ...this.search(),
        release: params.release,
        version: params.version,
        format: this.format.value
      });
    const link = h('a', { href, download: '', hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    this.host.showStatus(
      `Downloading the whole table as ${this.format.selectedOptions[0]?.textContent ?? this.format.value}…`
    );
  }

  private async openNotebook(): Promise<void> {
    const params = this.host.searchParams();
    if (!params) {
      return;
    }
    const last = this.host.lastImport();
    const body: Record<string, any> = {
      release: params.release,
      version: params.version,
      search: this.search()
    };
    if (
      last &&
      last.status === 'completed' &&
      last.release === params.release &&
      last.version === params.version
    ) {
      body.import = last.id;
    }
    const folder = this.notebookFolder.value.trim();
    if (folder) {
      body.folder = folder;
    }
    this.host.showStatus('Writing the notebook…');
    try {
      const made = await requestAPI<INotebookAnswer>('notebooks', {
        method: 'POST',
        body: JSON.stringify(body)
      });
      this.host.showStatus(`Notebook ${made.path} written.`);
      if (this.host.commands) {
        await this.host.commands.execute('docmanager:open', {
          path: made.path
        });
      }
    } catch (error) {
      this.host.showStatus(
        `Notebook refused: ${(error as Error).message}`,
        true
      );
    }
  }

  /** Every matching obsid (not just the page's), up to the import limit. */
  private async selectAllMatching(): Promise<void> {
    const params = this.host.searchParams();
    const res = this.host.currentResult();
    if (!params || !res) {
      return;
    }
    if (this.maxObsids === null) {
      try {
        const info = await requestAPI<{ max_obsids: number }>('info');
        this.maxObsids = info.max_obsids;
      } catch {
        this.maxObsids = 100000;
      }
    }
    const total = res.total ?? this.maxObsids;
    const limit = Math.min(total, this.maxObsids);
    this.selectAllButton.disabled = true;
    this.host.showStatus(`Selecting ${limit.toLocaleString()} rows…`);
    try {
      const all = await requestAPI<ISearchResult>(
        'search' +
          query({
            ...params,
            columns: 'obsid',
            offset: '0',
            limit: String(limit)
          })
      );
      const selected = this.host.selection();
      for (const row of all.rows) {
        selected.add(String(row[0]));
      }
      this.host.selectionChanged();
      this.host.showStatus(
        total > limit
          ? `Selected the first ${limit.toLocaleString()} of ${total.toLocaleString()} rows (the most one import may take).`
          : `Selected all ${all.rows.length.toLocaleString()} matching rows.`
      );
    } catch (error) {
      this.host.showStatus(
        `Cannot select all: ${(error as Error).message}`,
        true
      );
    } finally {
      this.selectAllButton.disabled = false;
    }
  }
}
