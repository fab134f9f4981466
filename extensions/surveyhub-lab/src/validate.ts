/**
 * Checks of the search form, run before any request: each answers an error message for its field, or
 * null. They follow what the archive accepts (surveyhub.archive.search), so a request that passes
 * here is not refused for its form.
 */

const DECIMAL = /^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?$|^[+-]?\.\d+$/;

function sexagesimal(text: string, hours: boolean): number | null {
  // 10:00:00.5, 10 00 00.5, 10h00m00.5s, -20d30m10s, +20:30
  const t = text.trim();
  const m =
    /^([+-])?(\d{1,3})(?:[:hd\s]\s*(\d{1,2})(?:[:m'\s]\s*(\d{1,2}(?:\.\d*)?))?)?[s"]?$/i.exec(
      t.replace(/\s+/g, ' ')
    );
  if (!m) {
    return null;
  }
  const [, sign, a, b, c] = m;
  const mins = b === undefined ? 0 : Number(b);
  const secs = c === undefined ? 0 : Number(c);
  if (mins >= 60 || secs >= 60) {
    return null;
  }
  const value = Number(a) + mins / 60 + secs / 3600;
  const deg = hours ? value * 15 : value;
  return sign === '-' ? -deg : deg;
}

/** [ra, dec] in degrees from decimal degrees or sexagesimal (hours for RA), or an error message. */
export function parsePosition(text: string): [number, number] | string {
  const cleaned = text.replace(/,/g, ' ').trim().replace(/\s+/g, ' ');
  if (!cleaned) {
    return 'give a position';
  }
  const parts = cleaned.split(' ');
  let ra: number | null = null;
  let dec: number | null = null;
  if (parts.length === 2 && parts.every(p => DECIMAL.test(p))) {
    ra = Number(parts[0]);
    dec = Number(parts[1]);
  } else {
    // split into RA and Dec: by a sign, by letters, or in halves of the numbers
    let raText: string | null = null;
    let decText: string | null = null;
    const signed = /^(.*?\S)\s*([+-].*)$/.exec(cleaned);
    if (signed) {
      [raText, decText] = [signed[1], signed[2]];
    } else if (parts.length === 2) {
      [raText, decText] = parts;
    } else if (parts.length === 4 || parts.length === 6) {
      raText = parts.slice(0, parts.length / 2).join(' ');
      decText = parts.slice(parts.length / 2).join(' ');
    }
    if (raText !== null && decText !== null) {
      ra = sexagesimal(raText, !/d/i.test(raText));
      dec = sexagesimal(decText, false);
    }
  }
  if (ra === null || dec === null || !isFinite(ra) || !isFinite(dec)) {
    return `cannot read "${text}" as a position: decimal degrees ("150.0 +20.5") or sexagesimal ("10:00:00 +20:30:00")`;
  }
  if (ra < 0 || ra > 360 || dec < -90 || dec > 90) {
    return 'outside the sky (RA 0..360, Dec -90..90)';
  }
  return [ra, dec];
}

export const RADIUS_UNITS: Record<string, number> = {
  arcsec: 1 / 3600,
  arcmin: 1 / 60,
  deg: 1
};

/** The largest cone the archive answers (ArchiveEngine limits.max_radius_deg). */
export const MAX_RADIUS_DEG = 10;

export function checkRadius(value: string, unit: string): string | null {
  if (!value.trim()) {
    return 'give a radius';
  }
  if (!DECIMAL.test(value.trim())) {
    return `"${value}" is not a number`;
  }
  const r = Number(value);
  if (r <= 0) {
    return 'must be above 0';
  }
  if (r * (RADIUS_UNITS[unit] ?? 1) > MAX_RADIUS_DEG) {
    return `above the limit of ${MAX_RADIUS_DEG} deg`;
  }
  return null;
}

/** The obsids of a pasted list (spaces, commas, semicolons or lines), or an error message. */
export function parseObsids(text: string, max = 100000): string[] | string {
  const items = text.split(/[\s,;]+/).filter(s => s);
  const bad = items.filter(s => !/^\d{1,19}$/.test(s));
  if (bad.length) {
    const shown = bad.slice(0, 3).join(', ');
    return `not an obsid (a whole number): ${shown}${bad.length > 3 ? ` and ${bad.length - 3} more` : ''}`;
  }
  if (items.length > max) {
    return `${items.length} obsids: at most ${max}`;
  }
  return items;
}

/** A number field: null when fine (empty is fine), else the message. */
export function checkNumber(
  text: string,
  opts: { min?: number; max?: number } = {}
): string | null {
  const t = text.trim();
  if (!t) {
    return null;
  }
  if (!DECIMAL.test(t)) {
    return `"${text}" is not a number`;
  }
  const v = Number(t);
  if (opts.min !== undefined && v < opts.min) {
    return `must be ${opts.min} or more`;
  }
  if (opts.max !== undefined && v > opts.max) {
    return `must be ${opts.max} or less`;
  }
  return null;
}

/** A folder inside the destination space, relative, with no '..'. */
export function checkFolder(text: string): string | null {
  const t = text.trim();
  if (!t) {
    return 'give a folder';
  }
  if (t.startsWith('/') || t.startsWith('~')) {
    return 'the folder is relative to the space: no leading "/" or "~"';
  }
  if (t.split('/').some(p => p === '..')) {
    return "'..' is not allowed: the folder must stay inside the space";
  }
  if (/[\\\0]/.test(t)) {
    return 'no backslashes';
  }
  return null;
}

// ---- names and other ways to search (the server mirrors these: surveyhub_lab/names.py) ----

const DESIGNATION =
  /^(?:LAMOST\s*)?J\s*(\d{2})(\d{2})(\d{2}(?:\.\d{1,3})?)\s*([+-])(\d{2})(\d{2})(\d{2}(?:\.\d{1,2})?)$/i;

/** A well-formed LAMOST designation: its canonical text and the position its digits give. */
export interface IDesignation {
  name: string;
  ra: number;
  dec: number;
}

/** The LAMOST designation `text` is ("LAMOST J045608.42+841515.4", "LAMOST" optional), or null. */
export function parseDesignation(text: string): IDesignation | null {
  const m = DESIGNATION.exec(text.trim());
  if (!m) {
    return null;
  }
  const [, hh, mm, ss, sign, dd, dm, ds] = m;
  if (
    Number(hh) > 23 ||
    Number(mm) > 59 ||
    Number(ss) >= 60 ||
    Number(dd) > 90 ||
    Number(dm) > 59 ||
    Number(ds) >= 60
  ) {
    return null;
  }
  const ra = (Number(hh) + Number(mm) / 60 + Number(ss) / 3600) * 15;
  const dec = Number(dd) + Number(dm) / 60 + Number(ds) / 3600;
  if (dec > 90) {
    return null;
  }
  return {
    name: `LAMOST J${hh}${mm}${ss}${sign}${dd}${dm}${ds}`,
    ra,
    dec: sign === '-' ? -dec : dec
  };
}

/**
 * The position field: coordinates (decimal or sexagesimal) or a LAMOST designation, which the server
 * resolves to its catalog row's position (or, when the version has no such row, the name's own digits).
 * Anything else gets a message; names of other catalogs are not resolved.
 */
export function checkPositionField(text: string): string | null {
  if (parseDesignation(text)) {
    return null;
  }
  const parsed = parsePosition(text);
  if (typeof parsed !== 'string') {
    return null;
  }
  if (/^[\d\s:+\-.,hmsd'"°]*$/i.test(text.trim())) {
    return parsed;
  }
  return (
    `cannot read "${text.trim()}" as a position nor as a LAMOST designation: give decimal degrees ` +
    '("150.0 +20.5"), sexagesimal ("10:00:00 +20:30:00") or a designation ' +
    '("LAMOST J045608.42+841515.4"); names of other catalogs are not resolved'
  );
}

/** Degrees from one decimal or sexagesimal angle (hours when `hours`), or null. */
export function parseAngle(text: string, hours: boolean): number | null {
  const t = text.trim();
  if (DECIMAL.test(t)) {
    return Number(t);
  }
  return sexagesimal(t, hours);
}

/** The longest ADQL text the server accepts (surveyhub_lab/search_routes.py MAX_ADQL_CHARS). */
export const MAX_ADQL_CHARS = 20000;

/** An ADQL query's form: null when it may be sent, else what is wrong. The archive parses the rest. */
export function checkAdql(text: string): string | null {
  const body = text
    .split('\n')
    .filter(line => !line.trim().startsWith('--'))
    .join('\n')
    .trim();
  if (!body) {
    return 'give an ADQL query (SELECT ... FROM ...)';
  }
  if (text.length > MAX_ADQL_CHARS) {
    return `${text.length} characters: at most ${MAX_ADQL_CHARS}`;
  }
  if (!/^(SELECT|WITH)\b/i.test(body)) {
    return 'an ADQL query starts with SELECT (or WITH)';
  }
  let depth = 0;
  let quote: string | null = null;
  for (const ch of body) {
    if (quote) {
      if (ch === quote) {
        quote = null;
      }
    } else if (ch === "'" || ch === '"') {
      quote = ch;
    } else if (ch === '(') {
      depth++;
    } else if (ch === ')') {
      depth--;
      if (depth < 0) {
        return 'a ")" closes no "("';
      }
    }
  }
  if (quote) {
    return `a ${quote === "'" ? 'string' : 'quoted name'} is not closed (${quote})`;
  }
  if (depth > 0) {
    return `${depth} "(" not closed`;
  }
  return null;
}
