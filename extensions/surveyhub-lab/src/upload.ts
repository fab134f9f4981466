import { h } from './dom';
import { ISearchResult, query, requestAPI } from './request';
import {
  errorText,
  fieldBox,
  flagField,
  ISearchHost,
  ISearchTab
} from './searchTabs';
import { checkRadius, parseAngle, RADIUS_UNITS } from './validate';

/** Most input rows of an upload (surveyhub_lab/position_list.py MAX_UPLOAD_ROWS). */
export const MAX_UPLOAD_ROWS = 10000;
/** Largest file sent (surveyhub_lab/search_routes.py MAX_UPLOAD_BYTES). */
export const MAX_UPLOAD_BYTES = 5000000;

const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** One usable line of a position list. */
export interface IInputRow {
  line: number;
  id: string;
  ra?: number;
  dec?: number;
  obsid?: string;
}

/** The cells of one CSV line (quotes as in CSV: "a,b" and "" inside quotes). */
function cells(line: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') {
        quoted = false;
      } else {
        cur += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === sep) {
      out.push(cur);
      cur = '';
    } else {
      cur += ch;
    }
  }
  out.push(cur);
  return out;
}

function coordinate(
  line: number,
  name: 'ra' | 'dec',
  text: string
): number | string {
  const value = parseAngle(text, name === 'ra' && !DECIMAL.test(text));
  if (value === null || !isFinite(value)) {
    return `line ${line}: ${name} '${text}' is not a number (decimal degrees, or sexagesimal)`;
  }
  if (name === 'ra' && (value < 0 || value > 360)) {
    return `line ${line}: ra '${text}' is outside 0..360`;
  }
  if (name === 'dec' && (value < -90 || value > 90)) {
    return `line ${line}: dec '${text}' is outside -90..90`;
  }
  return value;
}

/**
 * The usable rows of a position list (CSV with a header: ra and dec, or obsid; an optional id or name),
 * or a message naming the line at fault. The server checks the same (surveyhub_lab/position_list.py).
 */
export function parsePositionList(
  text: string,
  max = MAX_UPLOAD_ROWS
): IInputRow[] | string {
  const lines = text.replace(/^\ufeff/, '').split(/\r\n|\r|\n/);
  const first = lines.findIndex(l => l.trim());
  if (first < 0) {
    return 'the file is empty: give a header line (ra,dec or obsid) and one line per target';
  }
  const head = lines[first];
  const sep = [',', ';', '\t'].reduce((best, s) =>
    head.split(s).length > head.split(best).length ? s : best
  );
  const header = cells(head, sep).map(c => c.trim().toLowerCase());
  const col = (name: string) => header.indexOf(name);
  const hasPos = col('ra') >= 0 && col('dec') >= 0;
  const hasObsid = col('obsid') >= 0;
  if (!hasPos && !hasObsid) {
    const shown =
      header
        .filter(Boolean)
        .slice(0, 8)
        .map(c => `'${c}'`)
        .join(', ') || 'none';
    return `line ${first + 1}: no usable columns (found ${shown}): the header must name ra and dec, or obsid`;
  }
  const idCol = col('id') >= 0 ? col('id') : col('name');
  const rows: IInputRow[] = [];
  for (let i = first + 1; i < lines.length; i++) {
    const line = i + 1;
    if (!lines[i].trim()) {
      continue;
    }
    if (rows.length >= max) {
      return `line ${line}: more than ${max} rows; upload at most ${max} at a time`;
    }
    const values = cells(lines[i], sep);
    if (values.length > header.length) {
      return `line ${line}: ${values.length} values for ${header.length} columns`;
    }
    const cell = (name: string) => (values[col(name)] ?? '').trim();
    const id = (idCol >= 0 ? (values[idCol] ?? '').trim() : '') || String(line);
    const obsid = hasObsid ? cell('obsid') : '';
    if (obsid) {
      if (!/^\d{1,19}$/.test(obsid)) {
        return `line ${line}: obsid '${obsid}' is not an obsid (a whole number)`;
      }
      rows.push({ line, id, obsid });
      continue;
    }
    const raText = hasPos ? cell('ra') : '';
    const decText = hasPos ? cell('dec') : '';
    if (!raText && !decText) {
      return `line ${line}: no value to match by: give ${hasPos ? 'an obsid, or ra and dec' : 'an obsid'}`;
    }
    if (!raText || !decText) {
      return `line ${line}: give both ra and dec (${raText ? 'dec' : 'ra'} is empty)`;
    }
    const ra = coordinate(line, 'ra', raText);
    if (typeof ra === 'string') {
      return ra;
    }
    const dec = coordinate(line, 'dec', decText);
    if (typeof dec === 'string') {
      return dec;
    }
    rows.push({ line, id, ra, dec });
  }
  if (!rows.length) {
    return 'the file has a header but no rows: give one line per target';
  }
  return rows;
}

interface IUploadResult extends ISearchResult {
  inputs: number;
  unmatched: { line: number; id: string; error?: string | null }[];
}

/**
 * The position-list tab: a CSV file picked by the user, checked in the browser, then matched by the
 * archive (`POST surveyhub/upload`: the nearest row within the radius for each input row); the matches
 * go to the result grid led by the input row's id, and the inputs without a match are listed here.
 */
export class UploadTab implements ISearchTab {
  readonly node: HTMLElement;
  private file = h('input', {
    name: 'upload_file',
    type: 'file',
    accept: '.csv,.tsv,.txt,text/csv'
  });
  private radius = h('input', {
    name: 'upload_radius',
    type: 'text',
    value: '3'
  });
  private radiusUnit = h(
    'select',
    { name: 'upload_radius_unit', class: 'jp-mod-styled' },
    ...Object.keys(RADIUS_UNITS).map(u =>
      h('option', { value: u, selected: u === 'arcsec' }, u)
    )
  );
  private fileError: HTMLElement;
  private radiusError: HTMLElement;
  private info = h('div', { class: 'jp-SurveyPanel-uploadInfo' });
  private unmatched = h('div', { class: 'jp-SurveyPanel-unmatched' });
  private matchButton = h(
    'button',
    {
      class: 'jp-mod-styled jp-mod-accept jp-SurveyPanel-runUpload',
      type: 'submit'
    },
    'Match'
  );
  private text: string | null = null;

  constructor(private host: ISearchHost) {
    const file = fieldBox(
      'upload_file',
      'Position list (CSV: ra,dec or obsid; optional id or name)',
      this.file
    );
    const radius = fieldBox(
      'upload_radius',
      'Match radius',
      this.radius,
      this.radiusUnit
    );
    this.fileError = file.error;
    this.radiusError = radius.error;
    this.file.addEventListener('change', () => void this.readFile());
    this.radius.addEventListener('input', () =>
      flagField(this.radius, this.radiusError, null)
    );
    this.node = h(
      'form',
      {
        class: 'jp-SurveyPanel-form jp-SurveyPanel-uploadForm',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this.run();
        }
      },
      file.node,
      this.info,
      radius.node,
      h('div', { class: 'jp-SurveyPanel-buttons' }, this.matchButton),
      this.unmatched
    );
  }

  /** Read and check the picked file; the message (or the rows it holds) is shown at the field. */
  private async readFile(): Promise<IInputRow[] | null> {
    this.text = null;
    this.info.textContent = '';
    const f = this.file.files?.[0];
    if (!f) {
      flagField(this.file, this.fileError, 'pick a CSV file');
      return null;
    }
    if (f.size > MAX_UPLOAD_BYTES) {
      flagField(
        this.file,
        this.fileError,
        `${f.name} is ${(f.size / 1e6).toFixed(1)} MB: at most ${MAX_UPLOAD_BYTES / 1e6} MB`
      );
      return null;
    }
    const text = await f.text();
    const rows = parsePositionList(text);
    if (typeof rows === 'string') {
      flagField(this.file, this.fileError, `${f.name}: ${rows}`);
      return null;
    }
    flagField(this.file, this.fileError, null);
    this.text = text;
    const byObsid = rows.filter(r => r.obsid !== undefined).length;
    this.info.textContent =
      `${f.name}: ${rows.length} rows` +
      (byObsid
        ? ` (${byObsid} by obsid, ${rows.length - byObsid} by position)`
        : '');
    return rows;
  }

  private async run(): Promise<void> {
    const radiusError = checkRadius(this.radius.value, this.radiusUnit.value);
    flagField(this.radius, this.radiusError, radiusError);
    const rows = await this.readFile();
    if (!rows || radiusError || this.text === null) {
      return;
    }
    const v = this.host.searchVersion();
    if (!v) {
      flagField(
        this.file,
        this.fileError,
        'no release version to match against'
      );
      return;
    }
    this.matchButton.disabled = true;
    this.matchButton.textContent = 'Matching…';
    this.unmatched.replaceChildren();
    try {
      const result = await requestAPI<IUploadResult>(
        'upload' +
          query({
            release: v.release,
            version: v.version,
            catalog: this.host.searchCatalog(),
            radius: `${this.radius.value.trim()}${this.radiusUnit.value}`
          }),
        {
          method: 'POST',
          body: this.text,
          headers: { 'Content-Type': 'text/csv' }
        }
      );
      const missing = result.unmatched ?? [];
      if (missing.length) {
        this.unmatched.replaceChildren(
          h(
            'p',
            {},
            `${missing.length} input rows without a match within ${this.radius.value.trim()} ${this.radiusUnit.value}: `,
            missing
              .slice(0, 20)
              .map(m => `${m.id} (line ${m.line})`)
              .join(', ') + (missing.length > 20 ? ' …' : '')
          )
        );
      }
      this.host.showRows(
        result,
        `Upload: ${result.total} of ${result.inputs} input rows matched.`
      );
    } catch (error) {
      const text = errorText(error);
      if (/^radius:/.test(text)) {
        flagField(
          this.radius,
          this.radiusError,
          text.replace(/^radius:\s*/, '')
        );
      } else {
        flagField(this.file, this.fileError, text);
      }
    } finally {
      this.matchButton.disabled = false;
      this.matchButton.textContent = 'Match';
    }
  }
}
