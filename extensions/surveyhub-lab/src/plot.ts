/**
 * An interactive spectrum plot in SVG, from the server extension's `pixels` product (wavelength, flux,
 * ivar, andmask, ormask and the standard line list; the archive's `csv` product, flux only, when that
 * fails):
 *
 * - a view switch: flux, ivar, error (1/sqrt(ivar)), or the flux over shaded masked pixels (andmask or
 *   ormask non-zero, one shaded region a run of consecutive masked pixels);
 * - smoothing: none, or a boxcar of 7, 15 or 31 pixels over the good pixels (ivar > 0), computed here as
 *   the archive computes its `FluxSmooth7`/`FluxSmooth15` columns (`smooth_flux` of
 *   surveyhub.archive.spectrum_products: masked pixels left out of each window, windows cut short at the
 *   ends and at the gap between MRS arms);
 * - line markers at the catalog redshift: the lines of surveyhub.apps.lines (vacuum rest wavelengths, as
 *   LAMOST's wavelengths are vacuum) at rest * (1 + z), labelled, with a toggle;
 * - a readout under the pointer, drag to zoom on wavelength, double-click to zoom out; the zoom is kept
 *   when the view, smoothing or markers change.
 *
 * The SVG elements carry what they show, for tests and for anyone reading the DOM: `data-view` and
 * `data-smooth` on the svg, `data-value` on x tick labels, `data-start`/`data-end`/`data-pixels` on mask
 * regions, `data-name`/`data-rest`/`data-wavelength` on line markers.
 */

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 260;
const M = { left: 48, right: 8, top: 8, bottom: 28 };
/** Boxcar widths (pixels) offered; 1 is no smoothing. */
export const SMOOTH_WIDTHS = [1, 7, 15, 31];
/** A wavelength step this many times the median step splits the spectrum (the MRS blue and red arms). */
const SEGMENT_GAP = 5;

export type View = 'flux' | 'ivar' | 'error' | 'mask';

export interface ILine {
  name: string;
  /** vacuum rest wavelength, Angstrom */
  rest: number;
  kind: string;
}

export interface ISpectrum {
  wavelength: number[];
  flux: number[];
  /** null when the source has none (the CSV product) */
  ivar: number[] | null;
  andmask: number[] | null;
  ormask: number[] | null;
  lines: ILine[];
}

/** Columns of the archive's CSV spectrum (flux only: no ivar, masks or lines). */
export function parseSpectrumCSV(text: string): ISpectrum {
  const lines = text.split(/\r?\n/).filter(l => l.trim());
  const header = (lines.shift() ?? '')
    .split(',')
    .map(s => s.trim().toLowerCase());
  const iw = header.indexOf('wavelength');
  const iflux = header.indexOf('flux');
  if (iw < 0 || iflux < 0) {
    throw new Error('the spectrum has no Wavelength and Flux columns');
  }
  const out: ISpectrum = {
    wavelength: [],
    flux: [],
    ivar: null,
    andmask: null,
    ormask: null,
    lines: []
  };
  for (const line of lines) {
    const cells = line.split(',');
    const w = Number(cells[iw]);
    const f = Number(cells[iflux]);
    if (!isFinite(w) || !isFinite(f)) {
      continue;
    }
    out.wavelength.push(w);
    out.flux.push(f);
  }
  return out;
}

/** The server extension's `pixels` JSON (nulls, the non-finite values, become NaN). */
export function parsePixels(body: Record<string, any>): ISpectrum {
  const numbers = (name: string): number[] => {
    const values = body[name];
    if (!Array.isArray(values) || values.length !== body.wavelength.length) {
      throw new Error(
        `the spectrum's ${name} is missing or of the wrong length`
      );
    }
    return values.map(v => (v === null ? NaN : Number(v)));
  };
  if (!Array.isArray(body.wavelength) || body.wavelength.length < 2) {
    throw new Error('the spectrum has no wavelengths');
  }
  return {
    wavelength: numbers('wavelength'),
    flux: numbers('flux'),
    ivar: numbers('ivar'),
    andmask: numbers('andmask'),
    ormask: numbers('ormask'),
    lines: Array.isArray(body.lines) ? body.lines : []
  };
}

/** Index ranges [start, end) of the spectrum's separate pieces (split at wavelength gaps). */
export function segments(wl: number[]): [number, number][] {
  const steps = wl
    .slice(1)
    .map((w, i) => w - wl[i])
    .sort((a, b) => a - b);
  const median = steps[steps.length >> 1] ?? 0;
  const out: [number, number][] = [];
  let start = 0;
  for (let i = 1; i < wl.length; i++) {
    if (median > 0 && wl[i] - wl[i - 1] > SEGMENT_GAP * median) {
      out.push([start, i]);
      start = i;
    }
  }
  out.push([start, wl.length]);
  return out;
}

/**
 * `values` averaged over a centred window of `width` (odd) pixels counting only `good` pixels, within
 * each segment; a window without a good pixel gets the mean of its finite values (NaN when none).
 */
export function boxcar(
  values: number[],
  width: number,
  good: boolean[],
  parts: [number, number][]
): number[] {
  const out = values.slice();
  if (width <= 1) {
    return out;
  }
  const half = Math.floor(width / 2);
  for (const [a, b] of parts) {
    // prefix sums over the segment: good sum/count, finite sum/count
    const n = b - a;
    const gs = new Float64Array(n + 1);
    const gc = new Float64Array(n + 1);
    const fs = new Float64Array(n + 1);
    const fc = new Float64Array(n + 1);
    for (let k = 0; k < n; k++) {
      const v = values[a + k];
      const finite = isFinite(v);
      const ok = finite && good[a + k];
      gs[k + 1] = gs[k] + (ok ? v : 0);
      gc[k + 1] = gc[k] + (ok ? 1 : 0);
      fs[k + 1] = fs[k] + (finite ? v : 0);
      fc[k + 1] = fc[k] + (finite ? 1 : 0);
    }
    for (let k = 0; k < n; k++) {
      const lo = Math.max(0, k - half);
      const hi = Math.min(n, k + half + 1);
      const count = gc[hi] - gc[lo];
      const finite = fc[hi] - fc[lo];
      out[a + k] =
        count > 0
          ? (gs[hi] - gs[lo]) / count
          : finite > 0
            ? (fs[hi] - fs[lo]) / finite
            : NaN;
    }
  }
  return out;
}

/** Runs [first, last] of consecutive pixels with a non-zero andmask or ormask, within segments. */
export function maskRuns(
  spec: ISpectrum,
  parts: [number, number][]
): [number, number][] {
  const runs: [number, number][] = [];
  if (!spec.andmask || !spec.ormask) {
    return runs;
  }
  for (const [a, b] of parts) {
    let first = -1;
    for (let i = a; i <= b; i++) {
      const masked = i < b && (spec.andmask[i] !== 0 || spec.ormask[i] !== 0);
      if (masked && first < 0) {
        first = i;
      } else if (!masked && first >= 0) {
        runs.push([first, i - 1]);
        first = -1;
      }
    }
  }
  return runs;
}

/** A usable redshift: finite and above -1 (LAMOST's -9999 and missing values are not). */
export function usableRedshift(z: unknown): number | null {
  const value = typeof z === 'number' ? z : z === null ? NaN : Number(z);
  return isFinite(value) && value > -1 ? value : null;
}

function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {}
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    el.setAttribute(k, String(v));
  }
  return el;
}

function ticks(lo: number, hi: number, n = 5): number[] {
  const span = hi - lo || 1;
  const step0 = span / n;
  const mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step =
    [1, 2, 5, 10].map(m => m * mag).find(s => s >= step0) ?? mag * 10;
  const out: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) {
    out.push(Number((Math.round(t / step) * step).toPrecision(12)));
  }
  return out;
}

function quantile(sorted: number[], q: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.floor(q * sorted.length)))
  ];
}

function select(
  name: string,
  label: string,
  options: [string, string, boolean][]
): [HTMLLabelElement, HTMLSelectElement] {
  const el = document.createElement('select');
  el.name = name;
  el.className = 'jp-mod-styled';
  for (const [value, text, disabled] of options) {
    const o = document.createElement('option');
    o.value = value;
    o.textContent = text;
    o.disabled = disabled;
    el.append(o);
  }
  const wrap = document.createElement('label');
  wrap.append(`${label} `, el);
  return [wrap, el];
}

export interface IPlotOptions {
  /** the catalog redshift of the row (null or absent: no line markers) */
  z?: unknown;
}

/** The plot's element, controls above it; it redraws itself on zoom and on each control. */
export function spectrumPlot(
  spec: ISpectrum,
  options: IPlotOptions = {}
): HTMLElement {
  const box = document.createElement('div');
  box.className = 'jp-SurveyPanel-plot';
  const readout = document.createElement('div');
  readout.className = 'jp-SurveyPanel-plotReadout';
  readout.textContent = 'Drag to zoom, double-click to zoom out';
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'jp-SurveyPanel-plotSvg'
  });
  const hasIvar = spec.ivar !== null;
  const [viewLabel, viewSelect] = select('plotView', 'Show', [
    ['flux', 'Flux', false],
    ['ivar', 'Inverse variance', !hasIvar],
    ['error', 'Error (1/√ivar)', !hasIvar],
    ['mask', 'Flux and masks', !spec.andmask]
  ]);
  const [smoothLabel, smoothSelect] = select(
    'plotSmooth',
    'Smoothing',
    SMOOTH_WIDTHS.map(w => [String(w), w > 1 ? `${w} px` : 'None', false])
  );
  smoothSelect.value = '7';
  const z = usableRedshift(options.z);
  const linesToggle = document.createElement('input');
  linesToggle.type = 'checkbox';
  linesToggle.name = 'plotLines';
  linesToggle.checked = z !== null && spec.lines.length > 0;
  linesToggle.disabled = z === null || spec.lines.length === 0;
  const linesLabel = document.createElement('label');
  linesLabel.append(
    linesToggle,
    z === null
      ? ' Lines (no catalog redshift)'
      : spec.lines.length
        ? ` Lines at z = ${z.toPrecision(4)}`
        : ' Lines (no line list)'
  );
  const controls = document.createElement('div');
  controls.className = 'jp-SurveyPanel-plotControls';
  controls.append(viewLabel, smoothLabel, linesLabel);
  box.append(controls, root, readout);

  const wl = spec.wavelength;
  const parts = segments(wl);
  const good = wl.map(
    (_, i) => isFinite(spec.flux[i]) && (spec.ivar === null || spec.ivar[i] > 0)
  );
  const runs = maskRuns(spec, parts);
  const segmentEnd = new Set(parts.map(([, b]) => b - 1));
  const series: Record<View, number[]> = {
    flux: spec.flux,
    mask: spec.flux,
    ivar: spec.ivar ?? spec.flux,
    error: (spec.ivar ?? spec.flux).map(v => (v > 0 ? 1 / Math.sqrt(v) : NaN))
  };
  const smoothCache = new Map<string, number[]>();
  const smoothed = (view: View, width: number): number[] => {
    const key = `${view === 'mask' ? 'flux' : view}/${width}`;
    let out = smoothCache.get(key);
    if (!out) {
      out = boxcar(series[view], width, good, parts);
      smoothCache.set(key, out);
    }
    return out;
  };
  const full: [number, number] = [wl[0], wl[wl.length - 1]];
  let view: [number, number] = [...full];

  const draw = () => {
    root.replaceChildren();
    const kind = viewSelect.value as View;
    const width = Number(smoothSelect.value);
    root.dataset.view = kind;
    root.dataset.smooth = String(width);
    const [x0, x1] = view;
    const idx: number[] = [];
    for (let i = 0; i < wl.length; i++) {
      if (wl[i] >= x0 && wl[i] <= x1) {
        idx.push(i);
      }
    }
    if (idx.length < 2) {
      return;
    }
    const raw = series[kind];
    const smooth = width > 1 ? smoothed(kind, width) : null;
    // robust range over good pixels: cosmic rays and bad pixels do not flatten the spectrum
    const inRange = idx.filter(i => good[i] && isFinite(raw[i]));
    const ys = (inRange.length ? inRange : idx)
      .map(i => raw[i])
      .filter(v => isFinite(v))
      .sort((a, b) => a - b);
    let y0 = ys.length ? quantile(ys, 0.005) : 0;
    let y1 = ys.length ? quantile(ys, 0.995) : 1;
    const pad = (y1 - y0 || 1) * 0.08;
    y0 -= pad;
    y1 += pad;
    const px = (w: number) =>
      M.left + ((w - x0) / (x1 - x0)) * (W - M.left - M.right);
    const py = (f: number) =>
      H -
      M.bottom -
      ((Math.min(Math.max(f, y0), y1) - y0) / (y1 - y0)) *
        (H - M.top - M.bottom);
    // at most two points (min, max) per horizontal pixel; broken at non-finite values and segment ends
    const line = (values: number[]) => {
      const out: string[] = [];
      let col: number | null = null;
      let lo = 0;
      let hi = 0;
      let broken = true;
      const flush = () => {
        if (col !== null) {
          out.push(
            `${broken ? 'M' : 'L'}${col},${py(lo).toFixed(1)}L${col},${py(hi).toFixed(1)}`
          );
          broken = false;
          col = null;
        }
      };
      for (const i of idx) {
        const v = values[i];
        if (!isFinite(v)) {
          flush();
          broken = true;
          continue;
        }
        const c = Math.round(px(wl[i]));
        if (c !== col) {
          flush();
          col = c;
          lo = hi = v;
        } else {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        if (segmentEnd.has(i)) {
          flush();
          broken = true;
        }
      }
      flush();
      return out.join('');
    };
    const top = M.top;
    const bottom = H - M.bottom;
    if (kind === 'mask') {
      const edge = (i: number, side: -1 | 1) => {
        const j = Math.min(wl.length - 1, Math.max(0, i + side));
        return j === i ? wl[i] : (wl[i] + wl[j]) / 2;
      };
      for (const [a, b] of runs) {
        if (wl[b] < x0 || wl[a] > x1) {
          continue;
        }
        const left = px(Math.max(x0, edge(a, -1)));
        const right = px(Math.min(x1, edge(b, 1)));
        root.append(
          svg('rect', {
            x: left.toFixed(2),
            y: top,
            width: Math.max(1, right - left).toFixed(2),
            height: bottom - top,
            class: 'mask',
            'data-start': wl[a],
            'data-end': wl[b],
            'data-pixels': b - a + 1
          })
        );
      }
    }
    for (const t of ticks(x0, x1, 6)) {
      root.append(
        svg('line', {
          x1: px(t),
          x2: px(t),
          y1: bottom,
          y2: bottom + 4,
          class: 'axis'
        }),
        Object.assign(
          svg('text', {
            x: px(t),
            y: H - 10,
            'text-anchor': 'middle',
            class: 'xtick',
            'data-value': t
          }),
          { textContent: String(t) }
        )
      );
    }
    for (const t of ticks(y0, y1, 4)) {
      root.append(
        svg('line', {
          x1: M.left - 4,
          x2: W - M.right,
          y1: py(t),
          y2: py(t),
          class: 'grid'
        }),
        Object.assign(
          svg('text', { x: M.left - 6, y: py(t) + 3, 'text-anchor': 'end' }),
          { textContent: String(t) }
        )
      );
    }
    const rawClass = ['series', kind === 'mask' ? 'flux' : kind];
    if (smooth) {
      rawClass.push('raw');
    }
    root.append(
      svg('path', {
        d: line(raw),
        class: rawClass.join(' '),
        'data-series': kind === 'mask' ? 'flux' : kind
      })
    );
    if (smooth) {
      root.append(
        svg('path', {
          d: line(smooth),
          class: 'smooth',
          'data-width': width
        })
      );
    }
    if (linesToggle.checked && z !== null) {
      const shown = spec.lines
        .map(l => ({ ...l, at: l.rest * (1 + z) }))
        .filter(l => l.at >= x0 && l.at <= x1)
        .sort((a, b) => a.at - b.at);
      let lastX = -Infinity;
      let level = 0;
      for (const l of shown) {
        const x = px(l.at);
        // labels closer than 40 units step down, three levels at most, so doublets stay readable
        level = x - lastX < 40 ? (level + 1) % 3 : 0;
        lastX = x;
        const g = svg('g', {
          class: `lineMarker ${l.kind}`,
          'data-name': l.name,
          'data-rest': l.rest,
          'data-wavelength': l.at.toFixed(3),
          'data-x': x.toFixed(2)
        });
        g.append(
          svg('line', { x1: x, x2: x, y1: top, y2: bottom }),
          Object.assign(svg('text', { x: x + 2, y: top + 9 + level * 10 }), {
            textContent: l.name
          })
        );
        root.append(g);
      }
    }
    root.append(
      svg('rect', {
        x: M.left,
        y: top,
        width: W - M.left - M.right,
        height: bottom - top,
        class: 'frame'
      })
    );
  };

  const toWavelength = (e: MouseEvent) => {
    const r = root.getBoundingClientRect();
    const x = ((e.clientX - r.left) / r.width) * W;
    const f = (x - M.left) / (W - M.left - M.right);
    return view[0] + Math.min(1, Math.max(0, f)) * (view[1] - view[0]);
  };
  let dragFrom: number | null = null;
  let band: SVGRectElement | null = null;
  root.addEventListener('mousedown', e => {
    dragFrom = toWavelength(e);
    e.preventDefault();
  });
  root.addEventListener('mousemove', e => {
    const w = toWavelength(e);
    let lo = 0;
    let hi = wl.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (wl[mid] < w) {
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    const i = Math.min(wl.length - 1, lo);
    const bits = [
      `λ ${wl[i].toFixed(1)} Å`,
      `flux ${spec.flux[i].toPrecision(5)}`
    ];
    if (spec.ivar) {
      bits.push(`ivar ${spec.ivar[i].toPrecision(4)}`);
    }
    if (spec.andmask && spec.ormask && (spec.andmask[i] || spec.ormask[i])) {
      bits.push(`andmask ${spec.andmask[i]} ormask ${spec.ormask[i]}`);
    }
    readout.textContent = bits.join('   ');
    if (dragFrom !== null) {
      band?.remove();
      const sx = (v: number) =>
        M.left + ((v - view[0]) / (view[1] - view[0])) * (W - M.left - M.right);
      const a = sx(Math.min(dragFrom, w));
      const b = sx(Math.max(dragFrom, w));
      band = svg('rect', {
        x: a,
        y: M.top,
        width: b - a,
        height: H - M.top - M.bottom,
        class: 'band'
      });
      root.append(band);
    }
  });
  const onUp = (e: MouseEvent) => {
    if (!box.isConnected) {
      window.removeEventListener('mouseup', onUp);
      return;
    }
    if (dragFrom === null) {
      return;
    }
    const w = toWavelength(e);
    const [a, b] = [Math.min(dragFrom, w), Math.max(dragFrom, w)];
    dragFrom = null;
    band = null;
    if (b - a > (view[1] - view[0]) / 200) {
      view = [a, b];
    }
    draw();
  };
  window.addEventListener('mouseup', onUp);
  root.addEventListener('dblclick', () => {
    view = [...full];
    draw();
  });
  for (const control of [viewSelect, smoothSelect, linesToggle]) {
    control.addEventListener('change', draw);
  }
  draw();
  return box;
}
