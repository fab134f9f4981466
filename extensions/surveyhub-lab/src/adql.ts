import { h } from './dom';
import { ApiError, ISearchResult, query, requestAPI } from './request';
import {
  errorText,
  fieldBox,
  flagField,
  ISearchHost,
  ISearchTab
} from './searchTabs';
import { checkAdql, checkNumber } from './validate';

/** Most rows a query brings back (surveyhub_lab/search_routes.py MAX_ADQL_ROWS). */
const MAX_ROWS = 10000;

interface IExample {
  id: string;
  title: string;
  query: string;
}

interface IAdqlResult extends ISearchResult {
  overflow?: boolean;
  maxrec?: number;
}

/**
 * The ADQL tab: a query, worked examples for the picked version's TAP tables (from
 * `GET surveyhub/adql/examples`), run through the archive's TAP sync (`POST surveyhub/adql`), the rows
 * shown in the panel's result grid. Errors are shown at the query, with the cursor put where the archive
 * says the problem is.
 */
export class AdqlTab implements ISearchTab {
  readonly node: HTMLElement;
  private text = h('textarea', {
    name: 'adql',
    class: 'jp-SurveyPanel-adql',
    rows: 8,
    spellcheck: false,
    placeholder: 'SELECT TOP 10 obsid, ra, dec FROM <release>_<version>.lrs'
  });
  private examplesSelect = h('select', {
    name: 'adql_example',
    class: 'jp-mod-styled'
  });
  private maxrec = h('input', {
    name: 'maxrec',
    type: 'text',
    value: '1000'
  });
  private textError: HTMLElement;
  private maxrecError: HTMLElement;
  private runButton = h(
    'button',
    {
      class: 'jp-mod-styled jp-mod-accept jp-SurveyPanel-runAdql',
      type: 'submit'
    },
    'Run query'
  );
  private examples: IExample[] = [];
  private examplesFor = '';

  constructor(private host: ISearchHost) {
    const text = fieldBox('adql', 'ADQL query', this.text);
    const maxrec = fieldBox('maxrec', 'Rows at most', this.maxrec);
    this.textError = text.error;
    this.maxrecError = maxrec.error;
    this.examplesSelect.addEventListener('change', () => this.pickExample());
    this.text.addEventListener('input', () =>
      flagField(this.text, this.textError, null)
    );
    this.maxrec.addEventListener('input', () =>
      flagField(this.maxrec, this.maxrecError, null)
    );
    this.node = h(
      'form',
      {
        class: 'jp-SurveyPanel-form jp-SurveyPanel-adqlForm',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this.run();
        }
      },
      fieldBox('adql_example', 'Worked examples', this.examplesSelect).node,
      text.node,
      maxrec.node,
      h('div', { class: 'jp-SurveyPanel-buttons' }, this.runButton)
    );
  }

  /** The tab is shown or the version changed: list that version's examples. */
  shown(): void {
    const v = this.host.searchVersion();
    const key = v ? `${v.release}/${v.version}` : '';
    if (!v || key === this.examplesFor) {
      return;
    }
    this.examplesFor = key;
    this.examplesSelect.replaceChildren(
      h('option', { value: '' }, 'Loading examples…')
    );
    requestAPI<{ examples: IExample[] }>(
      'adql/examples' + query({ release: v.release, version: v.version })
    )
      .then(answer => {
        if (this.examplesFor !== key) {
          return;
        }
        this.examples = answer.examples ?? [];
        this.examplesSelect.replaceChildren(
          h(
            'option',
            { value: '' },
            `Pick an example (${this.examples.length})`
          ),
          ...this.examples.map(e => h('option', { value: e.id }, e.title))
        );
      })
      .catch(error => {
        this.examplesFor = '';
        this.examplesSelect.replaceChildren(
          h('option', { value: '' }, `No examples: ${errorText(error)}`)
        );
      });
  }

  private pickExample(): void {
    const example = this.examples.find(e => e.id === this.examplesSelect.value);
    if (example) {
      this.text.value = example.query;
      flagField(this.text, this.textError, null);
    }
  }

  private async run(): Promise<void> {
    const textError = checkAdql(this.text.value);
    let maxrecError = checkNumber(this.maxrec.value, { min: 1, max: MAX_ROWS });
    if (!maxrecError && !/^\d+$/.test(this.maxrec.value.trim())) {
      maxrecError = 'a whole number of rows';
    }
    flagField(this.text, this.textError, textError);
    flagField(this.maxrec, this.maxrecError, maxrecError);
    if (textError || maxrecError) {
      return;
    }
    const v = this.host.searchVersion();
    this.runButton.disabled = true;
    this.runButton.textContent = 'Running…';
    try {
      const result = await requestAPI<IAdqlResult>('adql', {
        method: 'POST',
        body: JSON.stringify({
          query: this.text.value,
          maxrec: Number(this.maxrec.value.trim() || '1000'),
          release: v?.release ?? '',
          version: v?.version ?? ''
        })
      });
      const note = result.overflow
        ? `The first ${result.rows.length} rows (raise "Rows at most" for more).`
        : `${result.rows.length} rows.`;
      this.host.showRows(result, `ADQL: ${note}`);
    } catch (error) {
      const text = errorText(error).replace(/^query:\s*/, '');
      flagField(this.text, this.textError, text);
      if (error instanceof ApiError && error.body?.line) {
        this.placeCursor(Number(error.body.line), Number(error.body.column));
      }
    } finally {
      this.runButton.disabled = false;
      this.runButton.textContent = 'Run query';
    }
  }

  /** Put the cursor at (line, column) of the query, both from 1, as the archive counts them. */
  private placeCursor(line: number, column: number): void {
    const lines = this.text.value.split('\n');
    let at = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i++) {
      at += lines[i].length + 1;
    }
    at += Math.max(0, column - 1);
    this.text.focus();
    this.text.setSelectionRange(at, at);
  }
}
