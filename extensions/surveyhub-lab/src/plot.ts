/**
 * An interactive spectrum plot in SVG: flux against wavelength (the archive's `csv` product,
 * `Wavelength,Flux,FluxSmooth7,FluxSmooth15`), a readout under the pointer, drag to zoom on wavelength,
 * double-click to zoom out.
 */

const NS = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 260;
const M = { left: 48, right: 8, top: 8, bottom: 28 };

export interface ISpectrum {
  wavelength: number[];
  flux: number[];
  smooth: number[] | null;
}

/** Columns of the archive's CSV spectrum. */
export function parseSpectrumCSV(text: string): ISpectrum {
  const lines = text.split(/\r?\n/).filter(l => l.trim());
  const header = (lines.shift() ?? '')
    .split(',')
    .map(s => s.trim().toLowerCase());
  const iw = header.indexOf('wavelength');
  const iflux = header.indexOf('flux');
  const ismooth = header.indexOf('fluxsmooth7');
  if (iw < 0 || iflux < 0) {
    throw new Error('the spectrum has no Wavelength and Flux columns');
  }
  const out: ISpectrum = {
    wavelength: [],
    flux: [],
    smooth: ismooth >= 0 ? [] : null
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
    out.smooth?.push(Number(cells[ismooth]));
  }
  return out;
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
    out.push(Math.round(t / step) * step);
  }
  return out;
}

function quantile(sorted: number[], q: number): number {
  return sorted[
    Math.min(sorted.length - 1, Math.max(0, Math.floor(q * sorted.length)))
  ];
}

/** The plot's element; it redraws itself on zoom. */
export function spectrumPlot(spec: ISpectrum): HTMLElement {
  const box = document.createElement('div');
  box.className = 'jp-SurveyPanel-plot';
  const readout = document.createElement('div');
  readout.className = 'jp-SurveyPanel-plotReadout';
  readout.textContent = 'Drag to zoom, double-click to zoom out';
  const root = svg('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: 'jp-SurveyPanel-plotSvg'
  });
  box.append(root, readout);
  const wl = spec.wavelength;
  const full: [number, number] = [wl[0], wl[wl.length - 1]];
  let view: [number, number] = [...full];

  const draw = () => {
    root.replaceChildren();
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
    const ys = idx.map(i => spec.flux[i]).sort((a, b) => a - b);
    // robust range: cosmic rays and bad pixels do not flatten the spectrum
    let y0 = quantile(ys, 0.005);
    let y1 = quantile(ys, 0.995);
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
    // at most two points (min, max) per horizontal pixel
    const line = (values: number[]) => {
      const cols = new Map<number, [number, number]>();
      for (const i of idx) {
        const c = Math.round(px(wl[i]));
        const v = values[i];
        const seen = cols.get(c);
        cols.set(
          c,
          seen ? [Math.min(seen[0], v), Math.max(seen[1], v)] : [v, v]
        );
      }
      const parts: string[] = [];
      for (const [c, [lo, hi]] of cols) {
        parts.push(
          `${parts.length ? 'L' : 'M'}${c},${py(lo).toFixed(1)}L${c},${py(hi).toFixed(1)}`
        );
      }
      return parts.join('');
    };
    for (const t of ticks(x0, x1, 6)) {
      root.append(
        svg('line', {
          x1: px(t),
          x2: px(t),
          y1: H - M.bottom,
          y2: H - M.bottom + 4,
          class: 'axis'
        }),
        Object.assign(
          svg('text', { x: px(t), y: H - 10, 'text-anchor': 'middle' }),
          {
            textContent: String(t)
          }
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
          {
            textContent: String(t)
          }
        )
      );
    }
    root.append(svg('path', { d: line(spec.flux), class: 'flux' }));
    if (spec.smooth) {
      root.append(svg('path', { d: line(spec.smooth), class: 'smooth' }));
    }
    root.append(
      svg('rect', {
        x: M.left,
        y: M.top,
        width: W - M.left - M.right,
        height: H - M.top - M.bottom,
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
    let i = 0;
    let lo = 0;
    let hi = wl.length - 1;
    while (lo <= hi) {
      i = (lo + hi) >> 1;
      if (wl[i] < w) {
        lo = i + 1;
      } else {
        hi = i - 1;
      }
    }
    i = Math.min(wl.length - 1, lo);
    readout.textContent = `λ ${wl[i].toFixed(1)} Å   flux ${spec.flux[i].toPrecision(5)}`;
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
  draw();
  return box;
}
