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
