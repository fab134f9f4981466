import { JupyterFrontEnd } from '@jupyterlab/application';

import { formatBytes, h } from './dom';
import { IDestination, IImportProgress, requestAPI } from './request';
import { errorText, ISearchTab } from './searchTabs';

/** How often the list is read again while one of the imports runs. */
const POLL_MS = 1000;
/** States an import can be resumed from (the server's `RESUMABLE`). */
const RESUMABLE = ['cancelled', 'interrupted', 'failed'];

/** What the Imports tab needs of the panel. */
export interface IImportsHost {
  /** The application's commands: the folder links open the file browser with them. */
  readonly commands: JupyterFrontEnd['commands'] | null;
  /** The user's spaces (their labels name where an import went). */
  spaces(): IDestination[];
  /** Show an import's progress bar and follow it, as for an import just started. */
  followImport(progress: IImportProgress): void;
}

/**
 * Open an import's folder in JupyterLab's file browser. `path` is where the server says the folder is
 * in the file browser (`cloud/…`, `teams/<team>/…`); it is null for spaces the browser does not show (S3).
 */
export async function openImportFolder(
  commands: JupyterFrontEnd['commands'] | null,
  path: string | null | undefined
): Promise<void> {
  if (!commands || !path) {
    throw new Error('this folder is not in the file browser');
  }
  await commands.execute('filebrowser:go-to-path', { path });
}

/** The import's folder as a link to the file browser, or as plain text (its URL) when it is not there. */
export function folderLink(
  commands: JupyterFrontEnd['commands'] | null,
  p: IImportProgress,
  label: string,
  onError: (text: string) => void
): HTMLElement {
  if (!p.path) {
    return h(
      'span',
      { class: 'jp-SurveyPanel-importFolder', title: p.url },
      `${label}${p.url}`
    );
  }
  return h(
    'a',
    {
      class: 'jp-SurveyPanel-importFolder',
      href: '#',
      title: `Open ${p.path} in the file browser`,
      'data-path': p.path,
      onclick: (e: Event) => {
        e.preventDefault();
        openImportFolder(commands, p.path).catch(error =>
          onError(`Cannot open ${p.path}: ${errorText(error)}`)
        );
      }
    },
    `${label}${p.folder}`
  );
}

/**
 * The "Imports" tab: the user's imports, newest first (`GET surveyhub/imports`), with their state, what
 * they copied and where; a cancelled, interrupted or failed import is resumed from here (it copies only
 * the files that are missing) and a running one cancelled. The list is read again every second while an
 * import runs and the tab is shown, and no more once none does.
 */
export class ImportsView implements ISearchTab {
  readonly node: HTMLElement;
  private list = h('ol', { class: 'jp-SurveyPanel-importList' });
  private note = h('div', { class: 'jp-SurveyPanel-importsStatus' });
  private timer: number | null = null;
  private seq = 0;

  constructor(private host: IImportsHost) {
    this.node = h(
      'div',
      { class: 'jp-SurveyPanel-imports' },
      h(
        'div',
        { class: 'jp-SurveyPanel-buttons' },
        h(
          'button',
          {
            class: 'jp-mod-styled jp-SurveyPanel-importsRefresh',
            type: 'button',
            onclick: () => void this.load()
          },
          'Refresh'
        )
      ),
      this.note,
      this.list
    );
    this.note.setAttribute('role', 'status');
  }

  /** The tab is shown: read the list again. */
  shown(): void {
    void this.load();
  }

  /** An import started or changed elsewhere in the panel: refresh the list if it is on screen. */
  changed(): void {
    if (this.onScreen()) {
      void this.load();
    }
  }

  /** Stop reading the list again (the panel is disposed). */
  stop(): void {
    if (this.timer !== null) {
      window.clearTimeout(this.timer);
      this.timer = null;
    }
  }

  async load(): Promise<void> {
    this.stop();
    const seq = ++this.seq;
    if (!this.list.childElementCount) {
      this.list.replaceChildren(h('li', {}, 'Loading your imports…'));
    }
    let imports: IImportProgress[];
    try {
      imports = (await requestAPI<{ imports: IImportProgress[] }>('imports'))
        .imports;
    } catch (error) {
      if (seq === this.seq) {
        this.list.replaceChildren(
          h(
            'li',
            { class: 'jp-SurveyPanel-error' },
            `Cannot list your imports: ${errorText(error)}`
          )
        );
      }
      return;
    }
    if (seq !== this.seq) {
      return; // a newer read is under way
    }
    this.list.replaceChildren(
      ...(imports.length
        ? imports.map(p => this.item(p))
        : [h('li', { class: 'jp-SurveyPanel-empty' }, 'No imports yet.')])
    );
    if (imports.some(p => isActive(p.status)) && this.onScreen()) {
      this.timer = window.setTimeout(() => void this.load(), POLL_MS);
    }
  }

  private onScreen(): boolean {
    return this.node.isConnected && !this.node.closest('[hidden]');
  }

  private say(text: string, error = false): void {
    this.note.textContent = text;
    this.note.classList.toggle('jp-mod-error', error);
  }

  private item(p: IImportProgress): HTMLElement {
    const space =
      this.host.spaces().find(d => d.space === p.destination?.space)?.label ??
      p.destination?.space ??
      '';
    const fraction = p.bytes_total
      ? p.bytes_done / p.bytes_total
      : p.files_total
        ? p.files_done / p.files_total
        : 0;
    const times = [
      p.created ? `started ${when(p.created)}` : '',
      p.finished
        ? `${p.status === 'completed' ? 'finished' : 'stopped'} ${when(p.finished)}`
        : p.updated && p.updated !== p.created
          ? `updated ${when(p.updated)}`
          : ''
    ].filter(Boolean);
    const buttons: HTMLElement[] = [];
    if (RESUMABLE.includes(p.status)) {
      buttons.push(
        h(
          'button',
          {
            class: 'jp-mod-styled jp-mod-accept jp-SurveyPanel-resume',
            type: 'button',
            title: 'Copy the files this import is missing',
            onclick: (e: Event) =>
              void this.resume(p, e.target as HTMLButtonElement)
          },
          'Resume'
        )
      );
    }
    if (isActive(p.status)) {
      buttons.push(
        h(
          'button',
          {
            class: 'jp-mod-styled jp-mod-warn jp-SurveyPanel-importCancel',
            type: 'button',
            disabled: p.status === 'cancelling',
            onclick: (e: Event) =>
              void this.cancel(p, e.target as HTMLButtonElement)
          },
          'Cancel'
        )
      );
    }
    return h(
      'li',
      {
        class: 'jp-SurveyPanel-importItem',
        'data-id': p.id,
        'data-status': p.status
      },
      h(
        'div',
        { class: 'jp-SurveyPanel-importHead' },
        h(
          'span',
          {
            class: 'jp-SurveyPanel-importState',
            'data-status': p.status
          },
          p.status
        ),
        h(
          'span',
          { class: 'jp-SurveyPanel-importWhat' },
          ` ${p.release} ${p.version}`
        )
      ),
      h(
        'div',
        {},
        folderLink(this.host.commands, p, space ? `${space}: ` : '', text =>
          this.say(text, true)
        )
      ),
      h(
        'div',
        { class: 'jp-SurveyPanel-importFiles' },
        `${p.files_done} of ${p.files_total} files` +
          (p.files_failed ? `, ${p.files_failed} failed` : '') +
          ` · ${formatBytes(p.bytes_done)} of ${formatBytes(p.bytes_total)}`
      ),
      isActive(p.status)
        ? h('progress', {
            class: 'jp-SurveyPanel-bar',
            max: 1,
            value: Math.min(1, fraction)
          })
        : '',
      times.length
        ? h('div', { class: 'jp-SurveyPanel-importTimes' }, times.join(' · '))
        : '',
      p.error ? h('div', { class: 'jp-SurveyPanel-error' }, p.error) : '',
      buttons.length
        ? h('div', { class: 'jp-SurveyPanel-buttons' }, ...buttons)
        : ''
    );
  }

  private async resume(
    p: IImportProgress,
    button: HTMLButtonElement
  ): Promise<void> {
    button.disabled = true;
    this.say(`Resuming the import into ${p.folder}…`);
    try {
      const resumed = await requestAPI<IImportProgress>(
        `imports/${encodeURIComponent(p.id)}/resume`,
        { method: 'POST' }
      );
      this.say(`Resumed the import into ${p.folder}.`);
      this.host.followImport(resumed);
    } catch (error) {
      this.say(
        `Resume of the import into ${p.folder} refused: ${errorText(error)}`,
        true
      );
    }
    await this.load();
  }

  private async cancel(
    p: IImportProgress,
    button: HTMLButtonElement
  ): Promise<void> {
    button.disabled = true;
    this.say(`Cancelling the import into ${p.folder}…`);
    try {
      await requestAPI<IImportProgress>(`imports/${encodeURIComponent(p.id)}`, {
        method: 'DELETE'
      });
      this.say(`Cancelled the import into ${p.folder}.`);
    } catch (error) {
      this.say(
        `Cancel of the import into ${p.folder} refused: ${errorText(error)}`,
        true
      );
    }
    await this.load();
  }
}

function isActive(status: string): boolean {
  return status === 'running' || status === 'cancelling';
}

function when(iso: string): string {
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}
