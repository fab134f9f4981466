"""Quick lookup: one object by obsid, designation or position; its catalog row(s) and its spectrum.

The notebook ``notebooks/apps/quick-lookup.ipynb`` only calls :func:`build`. Everything else is here:
reading what the user typed (:func:`parse_query`), the spectrum's derived arrays (:func:`smooth`,
:func:`line_segments`), and the widgets (:class:`SpectrumViewer`, :class:`LookupApp`), which ask the archive
service (:mod:`surveyhub.apps.archive_client`) with the user's own token, so they show exactly what the
user may read.

>>> parse_query("101001").params
{'obsid': '101001'}
>>> parse_query("J055820.25+812438.3").params
{'designation': 'LAMOST J055820.25+812438.3'}
>>> parse_query("89.58 81.41", "2arcmin").params
{'pos': '89.58 81.41', 'radius': '2arcmin'}
"""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from surveyhub.apps.archive_client import AppArchive, ArchiveUnavailable, NotReadable, VersionInfo
from surveyhub.apps.fast_imports import skip_slow_optional_imports
from surveyhub.apps.figures import figure_box, snapshot
from surveyhub.apps.lines import ABSORPTION, EMISSION, Line, observed, parse_custom

skip_slow_optional_imports()

MISSING = (-9999.0, -999.0)
DESIGNATION = re.compile(r"^(LAMOST\s*)?J\d{6}(\.\d+)?[+-]\d{6}(\.\d+)?$", re.IGNORECASE)
RADIUS = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*(arcsec|arcmin|deg|\"|'|)\s*$")
SUMMARY_COLUMNS = ("obsid", "designation", "ra", "dec", "class", "subclass", "z", "snrg", "obsdate")
#: Redshift slider bounds: stars (slightly negative) to high-redshift quasars.
Z_MIN, Z_MAX = -0.01, 6.0


@dataclass(frozen=True)
class Query:
    """What the user asked for, as archive search parameters, and how it reads to them."""

    kind: str
    params: dict[str, str]

    def describe(self) -> str:
        if self.kind == "position":
            return f"objects within {self.params['radius']} of {self.params['pos']}"
        return f"{self.kind} {next(iter(self.params.values()))}"


def parse_query(text: str, radius: str = "30arcsec") -> Query:
    """An obsid (digits), a designation (``J…`` or ``LAMOST J…``) or a position (``ra dec``, decimal or
    sexagesimal, read by the archive) with a radius (``30arcsec``, ``2arcmin``, ``0.1deg``; a bare number
    is arcsec). ValueError names what cannot be read."""
    value = " ".join(text.split())
    if not value:
        raise ValueError("lookup: enter an obsid, a designation (J…) or a position (ra dec)")
    if value.isdigit():
        return Query("obsid", {"obsid": value})
    compact = value.replace(" ", "")
    if DESIGNATION.match(compact):
        body = compact[6:] if compact.upper().startswith("LAMOST") else compact
        return Query("designation", {"designation": f"LAMOST {body.upper()}"})
    match = RADIUS.match(radius or "")
    if not match:
        raise ValueError(f"radius: {radius!r} is not a radius (e.g. 30arcsec, 2arcmin, 0.1deg)")
    number, unit = match.group(1), match.group(3)
    unit = {"": "arcsec", '"': "arcsec", "'": "arcmin"}.get(unit, unit)
    if float(number) <= 0:
        raise ValueError(f"radius: {radius!r} must be more than zero")
    parts = value.replace(",", " ").split()
    if len(parts) not in (2, 6) and not (len(parts) == 2 and ":" in value):
        raise ValueError(f"lookup: {text!r} is neither an obsid, a designation (J…) nor a position (ra dec)")
    return Query("position", {"pos": " ".join(parts), "radius": f"{number}{unit}"})


def is_missing(value: Any) -> bool:
    """LAMOST's missing values (-9999, -999), None and NaN."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        return float(value) in MISSING
    except (TypeError, ValueError):
        return False


def smooth(flux: np.ndarray, ivar: np.ndarray, width: int) -> np.ndarray:
    """An inverse-variance weighted boxcar of ``width`` pixels (1: unchanged); pixels with no weight
    around them stay NaN rather than made up."""
    flux = np.asarray(flux, dtype=np.float64)
    if width <= 1:
        return flux
    weights = np.where(np.isfinite(flux) & (np.asarray(ivar) > 0), np.asarray(ivar, dtype=np.float64), 0.0)
    kernel = np.ones(int(width))
    num = np.convolve(np.nan_to_num(flux) * weights, kernel, mode="same")
    den = np.convolve(weights, kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def line_segments(lines: Sequence[Line], z: float, low: float, high: float, window: tuple[float, float]):
    """Vertical segments (x, y with None between) at each line's observed wavelength inside ``window``,
    and the lines drawn (for labels)."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    shown: list[tuple[Line, float]] = []
    for line in lines:
        x = observed(line, z)
        if window[0] <= x <= window[1]:
            xs += [x, x, None]
            ys += [low, high, None]
            shown.append((line, x))
    return xs, ys, shown


def flux_range(flux: np.ndarray) -> tuple[float, float]:
    """A robust plotting range of a flux (1st-99th percentile, widened a little)."""
    finite = np.asarray(flux)[np.isfinite(flux)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(finite, [1, 99])
    span = (high - low) or 1.0
    return float(low - 0.1 * span), float(high + 0.15 * span)


def summary_table(rows: Iterable[dict[str, Any]], selected: int | None = None) -> str:
    """The found rows as an HTML table (obsid, designation, position, class, redshift, SNR, date)."""
    head = "".join(f"<th>{c}</th>" for c in SUMMARY_COLUMNS)
    body = []
    for row in rows:
        mark = ' class="sh-selected"' if row.get("obsid") == selected else ""
        cells = "".join(f"<td>{_fmt(row.get(c))}</td>" for c in SUMMARY_COLUMNS)
        body.append(f'<tr data-obsid="{row.get("obsid")}"{mark}>{cells}</tr>')
    return f'<table class="sh-table sh-results"><tr>{head}</tr>{"".join(body)}</table>'


def row_table(row: dict[str, Any]) -> str:
    """One catalog row, every column, as a two-column HTML table (missing values shown as such)."""
    cells = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{_fmt(v)}</td></tr>"
        for k, v in row.items()
        if not k.startswith("_")
    )
    return f'<table class="sh-table sh-row">{cells}</table>'


def _fmt(value: Any) -> str:
    if is_missing(value):
        return '<span class="sh-missing">—</span>'
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _widgets():
    import ipywidgets as widgets

    return widgets


class SpectrumViewer:
    """The spectrum: flux / ivar / masks, smoothing, redshift moving the marked lines, custom lines,
    the pipeline's class and the download and VO links. Plotly gives zoom and pan (and PNG export)."""

    def __init__(self) -> None:
        import plotly.graph_objects as go

        w = _widgets()
        self.spectrum: Any = None
        self.custom: list[Line] = []
        self.figure = go.FigureWidget(
            layout=go.Layout(
                height=430,
                margin={"l": 60, "r": 60, "t": 30, "b": 45},
                xaxis={"title": "vacuum wavelength (Å)"},
                yaxis={"title": "flux"},
                yaxis2={"title": "ivar", "overlaying": "y", "side": "right", "showgrid": False},
                legend={"orientation": "h", "y": 1.08},
                dragmode="zoom",
            )
        )
        names = ("flux", "ivar", "masked pixels", "emission lines", "absorption lines", "custom lines")
        colours = ("#1f3b73", "#999999", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")
        for name, colour in zip(names, colours, strict=True):
            mode = "markers" if name == "masked pixels" else "lines"
            self.figure.add_scatter(
                x=[],
                y=[],
                name=name,
                mode=mode,
                line={"color": colour, "width": 1},
                marker={"color": colour, "size": 4},
                yaxis="y2" if name == "ivar" else "y",
            )
        self.figure.add_scatter(
            x=[],
            y=[],
            name="labels",
            mode="text",
            showlegend=False,
            textposition="top center",
            textfont={"size": 9},
        )
        self.figure.add_class("sh-spectrum-plot")
        self.show_flux = w.Checkbox(value=True, description="flux", indent=False)
        self.show_ivar = w.Checkbox(value=False, description="ivar", indent=False)
        self.show_mask = w.Checkbox(value=True, description="masks", indent=False)
        self.show_emission = w.Checkbox(value=True, description="emission lines", indent=False)
        self.show_absorption = w.Checkbox(value=True, description="absorption lines", indent=False)
        self.smoothing = w.IntSlider(value=1, min=1, max=51, step=2, description="smooth (px)")
        self.z_slider = w.FloatSlider(
            value=0.0,
            min=Z_MIN,
            max=Z_MAX,
            step=0.0001,
            readout_format=".4f",
            description="redshift",
            continuous_update=False,
        )
        self.z_entry = w.FloatText(value=0.0, step=0.0001, layout={"width": "110px"})
        self.z_slider.add_class("sh-z-slider")
        self.z_entry.add_class("sh-z-entry")
        w.link((self.z_slider, "value"), (self.z_entry, "value"))
        self.z_reset = w.Button(description="pipeline z", tooltip="back to the pipeline's redshift")
        self.line_name = w.Text(placeholder="line name", layout={"width": "120px"})
        self.line_rest = w.Text(placeholder="rest λ (Å)", layout={"width": "110px"})
        self.line_add = w.Button(description="add line", icon="plus")
        self.line_list = w.Dropdown(options=[], layout={"width": "200px"})
        self.line_remove = w.Button(description="remove", icon="minus")
        self.line_error = w.HTML()
        self.line_name.add_class("sh-line-name")
        self.line_rest.add_class("sh-line-rest")
        self.line_add.add_class("sh-line-add")
        self.line_remove.add_class("sh-line-remove")
        self.info = w.HTML()
        self.info.add_class("sh-spectrum-info")
        self.links = w.HTML()
        self.links.add_class("sh-links")
        for control in (
            self.show_flux,
            self.show_ivar,
            self.show_mask,
            self.show_emission,
            self.show_absorption,
            self.smoothing,
            self.z_slider,
        ):
            control.observe(lambda _change: self.redraw(), names="value")
        self.z_reset.on_click(lambda _b: self.reset_z())
        self.line_add.on_click(lambda _b: self.add_line())
        self.line_remove.on_click(lambda _b: self.remove_line())
        self.widget = w.VBox(
            [
                self.info,
                w.HBox(
                    [self.show_flux, self.show_ivar, self.show_mask, self.show_emission, self.show_absorption]
                ),
                w.HBox([self.smoothing, self.z_slider, self.z_entry, self.z_reset]),
                figure_box(self.figure, "sh-spectrum-figure"),
                w.HBox([self.line_name, self.line_rest, self.line_add, self.line_list, self.line_remove]),
                self.line_error,
                self.links,
            ]
        )
        self.widget.add_class("sh-spectrum")
        self.pipeline_z = 0.0

    def show(self, spectrum: Any, row: dict[str, Any], links: dict[str, str]) -> None:
        """Draw ``spectrum`` (with its catalog ``row``) and set the redshift to the pipeline's."""
        self.spectrum = spectrum
        meta = spectrum.meta
        z = row.get("z", meta.get("z"))
        self.pipeline_z = 0.0 if is_missing(z) else float(z)
        parts = [
            f"<b>obsid {_fmt(row.get('obsid', meta.get('obsid')))}</b>",
            f"class <b class='sh-class'>{_fmt(row.get('class', meta.get('class')))}</b>",
            f"subclass <b class='sh-subclass'>{_fmt(row.get('subclass', meta.get('subclass')))}</b>",
            f"z = {_fmt(z)} ± {_fmt(row.get('z_err', meta.get('z_err')))}",
            f"SNR g {_fmt(row.get('snrg', meta.get('snrg')))}, r {_fmt(row.get('snrr', meta.get('snrr')))}",
        ]
        self.info.value = " · ".join(parts)
        labels = {
            "fits": "FITS file",
            "png": "PNG plot",
            "csv": "CSV (fits2csv)",
            "info": "catalog row (JSON)",
            "ssa": "SSA query (VO clients)",
        }
        self.links.value = "Download: " + " · ".join(
            # no ``download`` attribute: a download request is not a page visit, so a browser without the
            # archive's cookie yet would get a 401 instead of the hub's (silent) OAuth round trip
            f'<a href="{html.escape(url)}" target="_blank" rel="noopener" data-kind="{kind}">'
            f"{labels[kind]}</a>"
            for kind, url in links.items()
        )
        with self.figure.batch_update():
            self.z_slider.value = min(max(self.pipeline_z, Z_MIN), Z_MAX)
            self.redraw()
            self.figure.layout.xaxis.range = None
            self.figure.layout.xaxis.autorange = True

    def reset_z(self) -> None:
        self.z_slider.value = min(max(self.pipeline_z, Z_MIN), Z_MAX)

    def add_line(self) -> None:
        """A user's line, from the name and rest wavelength fields; a bad entry is named, not added."""
        try:
            line = parse_custom(self.line_name.value, self.line_rest.value)
        except ValueError as exc:
            self.line_error.value = f'<span class="sh-error">{html.escape(str(exc))}</span>'
            return
        self.line_error.value = ""
        self.custom.append(line)
        self._sync_line_list()
        self.line_name.value = self.line_rest.value = ""
        self.redraw()

    def remove_line(self) -> None:
        index = self.line_list.value
        if index is None or not 0 <= index < len(self.custom):
            return
        del self.custom[index]
        self._sync_line_list()
        self.redraw()

    def _sync_line_list(self) -> None:
        self.line_list.options = [(f"{ln.name} {ln.rest:g} Å", i) for i, ln in enumerate(self.custom)]
        self.line_list.value = len(self.custom) - 1 if self.custom else None

    def redraw(self) -> None:
        """Recompute every trace from the spectrum and the controls (one update to the browser)."""
        spec = self.spectrum
        if spec is None:
            return
        wave = spec.wavelength
        flux = smooth(spec.flux, spec.ivar, self.smoothing.value)
        low, high = flux_range(flux)
        window = (float(wave.min()), float(wave.max()))
        z = float(self.z_slider.value)
        masked = (spec.andmask != 0) if spec.andmask is not None else np.zeros(wave.shape, bool)
        fig = self.figure
        with fig.batch_update():
            fig.data[0].update(x=wave, y=flux, visible=self.show_flux.value)
            fig.data[1].update(x=wave, y=spec.ivar, visible=self.show_ivar.value)
            fig.data[2].update(x=wave[masked], y=np.nan_to_num(flux[masked]), visible=self.show_mask.value)
            label_x: list[float] = []
            label_text: list[str] = []
            for trace, lines, on in (
                (fig.data[3], EMISSION, self.show_emission.value),
                (fig.data[4], ABSORPTION, self.show_absorption.value),
                (fig.data[5], self.custom, True),
            ):
                xs, ys, shown = line_segments(lines, z, low, high, window)
                trace.update(x=xs, y=ys, visible=on)
                if on:
                    label_x += [x for _, x in shown]
                    label_text += [ln.name for ln, _ in shown]
            fig.data[6].update(x=label_x, y=[high] * len(label_x), text=label_text)
            fig.layout.yaxis.range = [low, high * 1.05 if high > 0 else high]


class LookupApp:
    """The whole app: version, query, results, catalog row and spectrum viewer."""

    def __init__(self, archive: AppArchive | None = None, query_string: str | None = None) -> None:
        w = _widgets()
        self.status = w.HTML()
        self.status.add_class("sh-status")
        try:
            self.archive = archive or AppArchive()
            self.versions: list[VersionInfo] = self.archive.versions()
        except (ArchiveUnavailable, NotReadable) as exc:
            self.archive, self.versions = None, []
            self._say(str(exc), error=True)
        options = [(f"{v.release} {v.version} — {v.title}", v.key) for v in self.versions]
        self.version = w.Dropdown(options=options, description="release", layout={"width": "420px"})
        if options:
            self.version.value = options[-1][1]
        self.version.add_class("sh-version")
        self.query = w.Text(
            placeholder="obsid, designation (J…) or position (ra dec)",
            description="find",
            layout={"width": "420px"},
            continuous_update=False,
        )
        self.query.add_class("sh-query")
        self.radius = w.Text(value="30arcsec", description="radius", layout={"width": "200px"})
        self.radius.add_class("sh-radius")
        self.go = w.Button(description="Look up", button_style="primary", icon="search")
        self.go.add_class("sh-go")
        self.results = w.HTML()
        self.results.add_class("sh-results-box")
        self.pick = w.Dropdown(options=[], description="object", layout={"width": "420px", "display": "none"})
        self.pick.add_class("sh-pick")
        self.row = w.HTML()
        self.row.add_class("sh-row-box")
        self.viewer = SpectrumViewer()
        self.rows: list[dict[str, Any]] = []
        self.go.on_click(lambda _b: self.lookup())
        self.query.observe(lambda _c: self.lookup(), names="value")
        self.pick.observe(lambda c: self.select(c["new"]), names="value")
        catalog = w.Accordion(children=[self.row], titles=("catalog row",))
        self.widget = w.VBox(
            [
                w.HTML("<h2>Quick lookup</h2>"),
                w.HBox([self.version]),
                w.HBox([self.query, self.radius, self.go]),
                self.status,
                self.results,
                self.pick,
                catalog,
                self.viewer.widget,
            ]
        )
        self.widget.add_class("sh-lookup")
        params = parse_qs(query_string if query_string is not None else os.environ.get("QUERY_STRING", ""))
        if params.get("version") and params["version"][0] in {v: v for _, v in options}:
            self.version.value = params["version"][0]
        for key in ("obsid", "q"):
            if params.get(key):
                self.query.value = params[key][0]  # runs the lookup
                break

    def _say(self, text: str, *, error: bool = False) -> None:
        kind = "sh-error" if error else "sh-info"
        self.status.value = f'<span class="{kind}">{html.escape(text)}</span>'

    def lookup(self) -> None:
        """Search the chosen version for what was typed; one row opens at once, several can be picked."""
        if self.archive is None or not self.version.value:
            self._say(
                "no release version to search: you may read none, or the archive is unreachable", error=True
            )
            return
        try:
            query = parse_query(self.query.value, self.radius.value)
        except ValueError as exc:
            self._say(str(exc), error=True)
            return
        release, version = self.version.value.split("/")
        self._say(f"looking up {query.describe()} in {release} {version}…")
        try:
            total, rows = self.archive.search(release, version, {**query.params, "limit": "50"})
        except (ValueError, NotReadable, ArchiveUnavailable) as exc:
            self._say(str(exc), error=True)
            return
        self.rows = rows
        if not rows:
            self.results.value = ""
            self._say(f"nothing found: no {query.describe()} in {release} {version}", error=True)
            return
        more = f" (showing {len(rows)})" if total > len(rows) else ""
        self._say(f"{total} found{more}: {query.describe()} in {release} {version}")
        self.pick.options = [
            (f"{r['obsid']}  {r.get('designation', '')}  {r.get('class', '')}", r["obsid"]) for r in rows
        ]
        self.pick.layout.display = None if len(rows) > 1 else "none"
        if self.pick.value == rows[0]["obsid"]:
            self.select(rows[0]["obsid"])
        else:
            self.pick.value = rows[0]["obsid"]  # selects it

    def select(self, obsid: int | None) -> None:
        """Show one found row and draw its spectrum."""
        if obsid is None or self.archive is None:
            return
        row = next((r for r in self.rows if r["obsid"] == obsid), None)
        if row is None:
            return
        self.results.value = summary_table(self.rows, obsid)
        release, version = self.version.value.split("/")
        try:
            full_row = self.archive.row(release, version, obsid)
        except (NotReadable, ArchiveUnavailable):
            full_row = row
        self.row.value = row_table(full_row)
        try:
            spectrum = self.archive.spectrum(release, version, obsid)
        except NotReadable:
            self._say(
                f"obsid {obsid}: its catalog row is shown; {release} {version} has no file for it", error=True
            )
            return
        except ArchiveUnavailable as exc:
            self._say(str(exc), error=True)
            return
        links = self.archive.links(release, version, obsid, full_row.get("ra"), full_row.get("dec"))
        self.viewer.show(spectrum, full_row, links)
        self._say(f"obsid {obsid} ({release} {version})")


STYLE = """<style>
.sh-table { border-collapse: collapse; font-size: 12px; margin: 4px 0; }
.sh-table td, .sh-table th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; }
.sh-results tr.sh-selected { background: #e8f0fe; }
.sh-error { color: #b00020; font-weight: bold; }
.sh-missing { color: #999; }
.sh-links a { color: #1a62c4; text-decoration: underline; }
</style>"""


def build(archive: AppArchive | None = None) -> Any:
    """The app's widget, for the notebook to display (styles included)."""
    w = _widgets()
    app = LookupApp(archive)
    snapshot(app.viewer.figure)
    box = w.VBox([w.HTML(STYLE), app.widget])
    box.app = app  # type: ignore[attr-defined]
    return box
