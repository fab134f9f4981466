"""Release explorer: a release version at a glance, two versions side by side.

The figures (sky coverage as HEALPix density per class, counts by class and subclass, SNR and magnitude
histograms, observations per night) come from a small :func:`summarize` of the version's LRS catalog, read
straight from the release store with the user's own permissions (columns only, batch by batch, so a 10 M
row version needs no more memory than a batch). Summaries are cached as JSON in the user's own cache folder
(:func:`cache_dir`), keyed by release, version and the version's ``published`` stamp, so the app opens at
once after the first time and a republished version (``--replace``) is summarised afresh.

Which versions a user may open is the archive's answer (``api/releases``, from their hub groups); the
store's permissions then lock the files too, so asking for another version by URL gets a plain "not a
version you can read" and no figure.
"""

from __future__ import annotations

import html
import json
import os
import re
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import numpy as np

from surveyhub.apps.archive_client import AppArchive, ArchiveUnavailable, NotReadable, VersionInfo
from surveyhub.apps.fast_imports import skip_slow_optional_imports
from surveyhub.apps.figures import figure_box, snapshot
from surveyhub.releases.manifest import ManifestError
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion

skip_slow_optional_imports()

#: Bump when the summary's shape changes: old cache files are then ignored.
SCHEMA = 1
#: HEALPix order of the sky map (nside 32, 12,288 pixels of ~1.8 degrees; a LAMOST plate is 5 degrees).
ORDER = 5
SNR_EDGES = np.concatenate([np.arange(0, 100, 5), np.arange(100, 301, 20)]).astype(float)
MAG_EDGES = np.arange(8.0, 22.01, 0.25)
COLUMNS = ("_healpix_29", "class", "subclass", "snrg", "mag_ps_g", "obsdate")
CLASSES_ORDER = ("STAR", "GALAXY", "QSO", "Unknown")


def cache_dir() -> Path:
    """The user's own cache: ``SURVEYHUB_APPS_CACHE``, else ``~/.cache/surveyhub/release-explorer``."""
    configured = os.environ.get("SURVEYHUB_APPS_CACHE")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "surveyhub" / "release-explorer"


def _valid(values: np.ndarray) -> np.ndarray:
    """Finite and not one of LAMOST's missing markers (-9999, -999; 99 for magnitudes)."""
    return np.isfinite(values) & (values > -999) & (values < 99)


def summarize(version: ReleaseVersion, *, catalog: str = "lrs", batch_size: int = 200_000) -> dict[str, Any]:
    """The explorer's figures' numbers for one version (a JSON-ready dict).

    PermissionError from the store (a version the account may not read) propagates; the app turns it into
    its "not a version you can read" message.
    """
    import pyarrow.dataset as pds

    started = time.perf_counter()
    manifest = version.manifest
    info = manifest.catalogs[catalog]
    path = version.path(info.path, catalog, "dataset")
    dataset = pds.dataset(path, format="parquet", filesystem=version.store.fs, exclude_invalid_files=True)
    shift = 2 * (29 - ORDER)
    classes: Counter[str] = Counter()
    subclasses: dict[str, Counter[str]] = defaultdict(Counter)
    sky: dict[str, Counter[int]] = defaultdict(Counter)
    snr: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(SNR_EDGES) - 1, dtype=np.int64))
    mag: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(MAG_EDGES) - 1, dtype=np.int64))
    nights: Counter[str] = Counter()
    rows = 0
    for batch in dataset.to_batches(columns=list(COLUMNS), batch_size=batch_size):
        rows += batch.num_rows
        cols = batch.to_pydict() if batch.num_rows < 1000 else None
        cls = np.asarray(
            cols["class"] if cols else batch.column("class").to_numpy(zero_copy_only=False), dtype=object
        )
        sub = np.asarray(
            cols["subclass"] if cols else batch.column("subclass").to_numpy(zero_copy_only=False),
            dtype=object,
        )
        pix = np.asarray(batch.column("_healpix_29").to_numpy(), dtype=np.int64) >> shift
        snrg = np.asarray(batch.column("snrg").to_numpy(zero_copy_only=False), dtype=np.float64)
        magg = np.asarray(batch.column("mag_ps_g").to_numpy(zero_copy_only=False), dtype=np.float64)
        dates = batch.column("obsdate").to_pylist()
        nights.update(str(d)[:10] for d in dates if d)
        for name in np.unique(cls):
            sel = cls == name
            label = str(name) if name else "Unknown"
            classes[label] += int(sel.sum())
            subclasses[label].update(str(s) if s not in (None, "") else "—" for s in sub[sel])
            ids, counts = np.unique(pix[sel], return_counts=True)
            sky[label].update(dict(zip(ids.tolist(), counts.tolist(), strict=True)))
            s = snrg[sel]
            snr[label] += np.histogram(np.clip(s[_valid(s)], SNR_EDGES[0], SNR_EDGES[-1] - 1e-9), SNR_EDGES)[
                0
            ]
            m = magg[sel]
            mag[label] += np.histogram(m[_valid(m)], MAG_EDGES)[0]
    ordered = sorted(classes, key=lambda c: (CLASSES_ORDER.index(c) if c in CLASSES_ORDER else 99, c))
    return {
        "schema": SCHEMA,
        "release": version.release,
        "version": version.version,
        "title": manifest.title,
        "published": manifest.published,
        "catalog": catalog,
        "rows": rows,
        "order": ORDER,
        "classes": {c: classes[c] for c in ordered},
        "subclasses": {c: dict(subclasses[c].most_common()) for c in ordered},
        "sky": {c: sorted([p, n] for p, n in sky[c].items()) for c in ordered},
        "snr": {
            "column": "snrg",
            "edges": SNR_EDGES.tolist(),
            "counts": {c: snr[c].tolist() for c in ordered},
        },
        "mag": {
            "column": "mag_ps_g",
            "edges": MAG_EDGES.tolist(),
            "counts": {c: mag[c].tolist() for c in ordered},
        },
        "nights": dict(sorted(nights.items())),
        "seconds": round(time.perf_counter() - started, 3),
    }


def cache_path(version: ReleaseVersion, root: Path | None = None) -> Path:
    """Where ``version``'s summary is cached: its name carries the published stamp and the schema."""
    stamp = re.sub(r"[^0-9A-Za-z]", "", version.manifest.published) or "unpublished"
    return (root or cache_dir()) / f"{version.release}__{version.version}__{stamp}__o{ORDER}s{SCHEMA}.json"


def cached_summary(version: ReleaseVersion, root: Path | None = None) -> tuple[dict[str, Any], bool]:
    """The summary, from the cache when it is there (True) or computed and cached now (False)."""
    path = cache_path(version, root)
    try:
        summary = json.loads(path.read_text())
        if summary.get("schema") == SCHEMA and summary.get("published") == version.manifest.published:
            return summary, True
    except (OSError, ValueError):
        pass
    summary = summarize(version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(summary))
        temporary.replace(path)
    except OSError:
        pass  # a read-only home still gets its figures, only not cached
    return summary, False


def open_version(store: ReleaseStore, key: str, readable: set[str]) -> ReleaseVersion:
    """The version ``release/version`` if the user may read it; NotReadable, with no data, otherwise."""
    refusal = NotReadable(
        f"{key.replace('/', ' ')} is not a version you can read: it does not exist, or none of your groups "
        "is granted it. Pick one of yours from the list."
    )
    if key not in readable or key.count("/") != 1:
        raise refusal
    release, name = key.split("/")
    version = ReleaseVersion(store, release, name)
    try:
        version.manifest  # noqa: B018 - reading it is the check (the store's permissions)
    except (OSError, ManifestError):  # not permitted (PermissionError), or not there
        raise refusal from None
    return version


def mollweide_lonlat(width: int = 360) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RA, Dec (degrees) of each cell of a Mollweide raster ``width`` x ``width/2`` (RA increasing to the
    left, 180 in the middle, north up), and whether the cell is inside the ellipse."""
    height = width // 2
    x = np.linspace(-2 * np.sqrt(2), 2 * np.sqrt(2), width)
    y = np.linspace(-np.sqrt(2), np.sqrt(2), height)
    xx, yy = np.meshgrid(x, y)
    theta = np.arcsin(np.clip(yy / np.sqrt(2), -1, 1))
    dec = np.degrees(np.arcsin(np.clip((2 * theta + np.sin(2 * theta)) / np.pi, -1, 1)))
    with np.errstate(invalid="ignore", divide="ignore"):
        lon = np.degrees(np.pi * xx / (2 * np.sqrt(2) * np.cos(theta)))
    inside = np.abs(lon) <= 180
    ra = np.mod(180.0 - np.where(inside, lon, 0.0), 360.0)
    return ra, dec, inside


@lru_cache(maxsize=4)
def mollweide_pixels(order: int, width: int = 360) -> np.ndarray:
    """For the Mollweide raster of :func:`mollweide_lonlat`, the nested HEALPix pixel of each cell at
    ``order``, -1 outside the ellipse."""
    import healpy

    ra, dec, inside = mollweide_lonlat(width)
    pix = healpy.ang2pix(2**order, ra, dec, nest=True, lonlat=True)
    return np.where(inside, pix, -1)


def sky_image(summary: dict[str, Any], cls: str = "all") -> np.ndarray:
    """log10 of spectra per HEALPix pixel on the Mollweide raster (NaN where none, or outside the sky)."""
    order = int(summary["order"])
    counts = np.zeros(12 * 4**order, dtype=np.float64)
    for name, pairs in summary["sky"].items():
        if cls in ("all", name) and pairs:
            arr = np.asarray(pairs, dtype=np.int64)
            np.add.at(counts, arr[:, 0], arr[:, 1])
    grid = mollweide_pixels(order)
    values = np.where(grid >= 0, counts[np.clip(grid, 0, None)], 0.0)
    with np.errstate(divide="ignore"):
        return np.where(values > 0, np.log10(values), np.nan)


def sky_outline(shape: tuple[int, int]) -> tuple[list[float], list[float]]:
    """The Mollweide ellipse and the equator, in the raster's cell coordinates (for the map's frame)."""
    height, width = shape
    t = np.linspace(0, 2 * np.pi, 181)
    xs = ((np.cos(t) + 1) / 2 * (width - 1)).tolist()
    ys = ((np.sin(t) + 1) / 2 * (height - 1)).tolist()
    return [*xs, None, 0.0, width - 1.0], [*ys, None, (height - 1) / 2, (height - 1) / 2]


def per_period(nights: dict[str, int], most: int = 60) -> tuple[list[str], list[int], str]:
    """Spectra per night, or per month when there are more than ``most`` nights (a readable bar chart)."""
    if len(nights) <= most:
        return list(nights), list(nights.values()), "night"
    months: Counter[str] = Counter()
    for night, n in nights.items():
        months[night[:7]] += n
    ordered = sorted(months)
    return ordered, [months[m] for m in ordered], "month"


@dataclass
class Side:
    """One column of the explorer: a version picker and its figures."""

    picker: Any
    message: Any
    sky_class: Any
    sky: Any
    stats: Any
    box: Any
    summary: dict[str, Any] | None = None


class ExplorerApp:
    """Two versions side by side (left and right), each with the same figures."""

    def __init__(
        self,
        archive: AppArchive | None = None,
        store: ReleaseStore | None = None,
        query_string: str | None = None,
        cache_root: Path | None = None,
    ) -> None:
        import ipywidgets as w

        self.cache_root = cache_root
        self.status = w.HTML()
        self.status.add_class("sh-status")
        self.versions: list[VersionInfo] = []
        try:
            self.archive = archive or AppArchive()
            self.versions = self.archive.versions()
        except (ArchiveUnavailable, NotReadable) as exc:
            self.status.value = f'<span class="sh-error">{html.escape(str(exc))}</span>'
        self.readable = {v.key for v in self.versions}
        if store is None:
            url = os.environ.get("SURVEYHUB_STORE_URL") or os.environ.get("SURVEYHUB_RELEASES_DIR", "")
            options = json.loads(os.environ.get("SURVEYHUB_STORE_STORAGE_OPTIONS") or "{}")
            store = ReleaseStore(url, options or None) if url else None
        self.store = store
        if store is None:
            self.status.value = (
                '<span class="sh-error">no release store configured (SURVEYHUB_STORE_URL)</span>'
            )
        keys = [v.key for v in self.versions]
        params = parse_qs(query_string if query_string is not None else os.environ.get("QUERY_STRING", ""))
        defaults = (keys[-2] if len(keys) > 1 else (keys[0] if keys else None), keys[-1] if keys else None)
        self.sides = [
            self._side(name, params.get(name, [default])[0], keys)
            for name, default in zip(("left", "right"), defaults, strict=True)
        ]
        self.widget = w.VBox(
            [
                w.HTML("<h2>Release explorer</h2>"),
                self.status,
                w.HBox([s.box for s in self.sides], layout={"width": "100%"}),
            ]
        )
        self.widget.add_class("sh-explorer")

    def _side(self, name: str, wanted: str | None, keys: list[str]) -> Side:
        import ipywidgets as w
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        labels = [(k.replace("/", " "), k) for k in keys]
        picker = w.Dropdown(options=labels, description=name, layout={"width": "300px"})
        picker.add_class(f"sh-pick-{name}")
        message = w.HTML()
        message.add_class(f"sh-message-{name}")
        sky_class = w.ToggleButtons(options=["all"], style={"button_width": "70px"})
        sky = go.FigureWidget(
            layout=go.Layout(
                height=300,
                margin={"l": 10, "r": 10, "t": 30, "b": 10},
                title={"text": "sky coverage"},
                xaxis={"visible": False},
                yaxis={"visible": False, "scaleanchor": "x"},
                plot_bgcolor="white",
            )
        )
        sky.add_heatmap(
            z=[[None]],
            colorscale="Viridis",
            colorbar={"title": {"text": "log₁₀ N"}},
            hoverinfo="skip",
            name="density",
        )
        edge_x, edge_y = sky_outline(mollweide_pixels(ORDER).shape)
        sky.add_scatter(
            x=edge_x,
            y=edge_y,
            mode="lines",
            line={"color": "#999", "width": 1},
            hoverinfo="skip",
            name="sky",
            showlegend=False,
        )
        sky.add_class(f"sh-sky-{name}")
        stats = go.FigureWidget(
            make_subplots(
                rows=3,
                cols=2,
                specs=[[{}, {}], [{}, {}], [{"colspan": 2}, None]],
                subplot_titles=(
                    "spectra by class",
                    "SNR (g)",
                    "magnitude (PS1 g)",
                    "observations over time",
                    "subclasses (top 20)",
                ),
                vertical_spacing=0.12,
            )
        )
        stats.update_layout(
            height=720,
            margin={"l": 50, "r": 10, "t": 40, "b": 40},
            barmode="stack",
            showlegend=True,
            legend={"orientation": "h", "y": -0.08},
        )
        stats.add_class(f"sh-stats-{name}")
        box = w.VBox(
            [
                picker,
                message,
                sky_class,
                figure_box(sky, f"sh-sky-box-{name}"),
                figure_box(stats, f"sh-stats-box-{name}"),
            ],
            layout={"width": "50%"},
        )
        box.add_class(f"sh-side-{name}")
        side = Side(picker, message, sky_class, sky, stats, box)
        picker.observe(lambda c: self.show(side, c["new"]), names="value")
        sky_class.observe(lambda c: self._draw_sky(side), names="value")
        if wanted is not None and wanted in keys:
            if picker.value == wanted:
                self.show(side, wanted)
            else:
                picker.value = wanted
        elif wanted is not None:
            picker.value = None
            self.show(side, wanted)
        return side

    def show(self, side: Side, key: str | None) -> None:
        """Summarise (or read from the cache) and draw ``key`` on ``side``; a refusal clears the figures."""
        if key is None or self.store is None:
            return
        try:
            version = open_version(self.store, key, self.readable)
            summary, hit = cached_summary(version, self.cache_root)
        except NotReadable as exc:
            side.summary = None
            side.message.value = f'<span class="sh-error sh-refused">{html.escape(str(exc))}</span>'
            self._clear(side)
            return
        except PermissionError:
            side.summary = None
            side.message.value = (
                f'<span class="sh-error sh-refused">{html.escape(key)} is not a version you can read</span>'
            )
            self._clear(side)
            return
        side.summary = summary
        where = "cached" if hit else f"summarised in {summary['seconds']:.1f} s"
        side.message.value = (
            f'<b class="sh-title">{html.escape(summary["title"])}</b><br>'
            f'<span class="sh-rows" data-rows="{summary["rows"]}">{summary["rows"]:,} LRS spectra</span>, '
            f"published {html.escape(summary['published'][:10])} ({where})"
        )
        options = ["all", *summary["classes"]]
        if list(side.sky_class.options) != options:
            side.sky_class.options = options
        self._draw_sky(side)
        self._draw_stats(side)

    def _clear(self, side: Side) -> None:
        with side.sky.batch_update():
            side.sky.data[0].z = [[None]]
        with side.stats.batch_update():
            side.stats.data = []

    def _draw_sky(self, side: Side) -> None:
        if side.summary is None:
            return
        cls = side.sky_class.value or "all"
        image = sky_image(side.summary, cls)
        with side.sky.batch_update():
            side.sky.data[0].z = image.astype(np.float32)  # sent as a binary buffer, NaN left blank
            side.sky.layout.title.text = f"sky coverage ({cls}), HEALPix order {side.summary['order']}"

    def _draw_stats(self, side: Side) -> None:
        import plotly.graph_objects as go

        s = side.summary
        assert s is not None
        colours = {"STAR": "#1f77b4", "GALAXY": "#d62728", "QSO": "#2ca02c", "Unknown": "#7f7f7f"}
        traces: list[tuple[Any, int, int]] = []
        classes = list(s["classes"])
        traces.append(
            (
                go.Bar(
                    x=classes,
                    y=[s["classes"][c] for c in classes],
                    showlegend=False,
                    marker={"color": [colours.get(c, "#8c564b") for c in classes]},
                    name="by class",
                ),
                1,
                1,
            )
        )
        for key, col in (("snr", 2), ("mag", 1)):
            edges = np.asarray(s[key]["edges"])
            mids = ((edges[:-1] + edges[1:]) / 2).tolist()
            row = 1 if key == "snr" else 2
            for c in classes:
                traces.append(
                    (
                        go.Bar(
                            x=mids,
                            y=s[key]["counts"][c],
                            name=c,
                            legendgroup=c,
                            showlegend=key == "snr",
                            width=(edges[1:] - edges[:-1]).tolist(),
                            marker={"color": colours.get(c, "#8c564b")},
                        ),
                        row,
                        col,
                    )
                )
        periods, counts, unit = per_period(s["nights"])
        traces.append(
            (
                go.Bar(x=periods, y=counts, name=f"per {unit}", showlegend=False, marker={"color": "#444"}),
                2,
                2,
            )
        )
        top = Counter(
            {f"{c} {sub}": n for c in classes for sub, n in s["subclasses"][c].items()}
        ).most_common(20)
        traces.append(
            (
                go.Bar(
                    x=[k for k, _ in top],
                    y=[n for _, n in top],
                    name="subclasses",
                    showlegend=False,
                    marker={"color": [colours.get(k.split()[0], "#8c564b") for k, _ in top]},
                ),
                3,
                1,
            )
        )
        with side.stats.batch_update():
            side.stats.data = []
            for trace, row, col in traces:
                side.stats.add_trace(trace, row=row, col=col)
            side.stats.update_xaxes(type="category", row=2, col=2)


STYLE = """<style>
.sh-error { color: #b00020; font-weight: bold; }
</style>"""


def build(**kwargs: Any) -> Any:
    """The app's widget, for the notebook to display."""
    import ipywidgets as w

    app = ExplorerApp(**kwargs)
    snapshot(*(f for side in app.sides for f in (side.sky, side.stats)))
    box = w.VBox([w.HTML(STYLE), app.widget])
    box.app = app  # type: ignore[attr-defined]
    return box
