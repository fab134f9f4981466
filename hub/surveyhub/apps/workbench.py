"""The team inspection workbench (Voila app ``notebooks/apps/team-workbench.ipynb``): the logic behind it.

A team loads a target list, members step through its spectra and record verdicts, and everyone sees the
others' verdicts as they are made. The state is the archive's (``api/workbench/...``, see
:mod:`surveyhub.archive.workbench_api`); this module is its client in the member's own kernel:

- :class:`WorkbenchClient`: the archive's workbench routes, with the server's token;
- list sources: pasted obsids (:func:`parse_obsid_text`), an import's ``manifest.json`` in the team space
  (:func:`find_manifests`), an entry of the query history or a TAP query (:func:`obsids_from_history`,
  :func:`obsids_from_adql`);
- :func:`write_export`: the result table into the team space, written here with the member's own
  credentials (the archive holds none for team spaces);
- :class:`WorkbenchApp`: the ipywidgets interface, which polls the cheap ``changes?since=N`` route every
  :data:`POLL_SECONDS` so teammates' verdicts appear within about a second.
"""

from __future__ import annotations

import asyncio
import html
import io
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from surveyhub.archive.workbench_store import CLASSES, QUALITY_FLAGS

#: How often the app asks for teammates' new verdicts.
POLL_SECONDS = 1.0
#: Lines marked on the spectrum (rest-frame vacuum wavelengths, Angstrom), moved by the redshift.
LINES = {
    "Ca K": 3934.8,
    "Ca H": 3969.6,
    "H delta": 4102.9,
    "H gamma": 4341.7,
    "H beta": 4862.7,
    "[O III]": 5008.2,
    "Mg b": 5176.7,
    "Na D": 5895.6,
    "H alpha": 6564.6,
    "[S II]": 6718.3,
}


class WorkbenchUnavailable(RuntimeError):
    """The archive cannot be reached or refused; the message says what happened."""


class WorkbenchRefused(ValueError):
    """The archive refused the input (400) or knows no such thing for you (404); its own words."""


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or f"HTTP {response.status_code}"
    return str(body.get("error") or response.reason) if isinstance(body, dict) else response.reason


class WorkbenchClient:
    """The archive's workbench routes, as the member's kernel reaches them."""

    def __init__(self, url: str | None = None, token: str | None = None) -> None:
        url = url if url is not None else os.environ.get("SURVEYHUB_ARCHIVE_URL", "")
        if not url:
            raise WorkbenchUnavailable(
                "no archive service configured (SURVEYHUB_ARCHIVE_URL is unset): open the workbench from "
                "your server on the platform"
            )
        self.url = url.rstrip("/") + "/"
        token = (
            token
            if token is not None
            else os.environ.get("SURVEYHUB_ARCHIVE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN", "")
        )
        self.session = requests.Session()
        if token:
            self.session.headers["Authorization"] = f"token {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request; 400 and 404 raise :class:`WorkbenchRefused`, other failures
        :class:`WorkbenchUnavailable`."""
        try:
            response = self.session.request(method, self.url + path, timeout=60, **kwargs)
        except requests.RequestException as exc:
            raise WorkbenchUnavailable(f"the archive service is not reachable ({exc})") from None
        if response.status_code in (400, 404):
            raise WorkbenchRefused(_reason(response))
        if response.status_code >= 400:
            raise WorkbenchUnavailable(f"the archive answered {response.status_code}: {_reason(response)}")
        return response

    def teams(self) -> list[str]:
        """The teams the member works in."""
        return list(self.call("GET", "api/workbench/teams").json()["teams"])

    def versions(self) -> list[str]:
        """``RELEASE/VERSION`` of every version the member may read."""
        return [f"{r['release']}/{r['version']}" for r in self.call("GET", "api/releases").json()["releases"]]

    def lists(self, team: str) -> list[dict[str, Any]]:
        """The team's lists, newest first."""
        return list(self.call("GET", f"api/workbench/teams/{team}/lists").json()["lists"])

    def create_list(
        self,
        team: str,
        *,
        title: str,
        release: str,
        version: str,
        obsids: list[int],
        source: str = "obsids",
        query: str | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        """Make a list for the team."""
        body = {
            "title": title,
            "release": release,
            "version": version,
            "obsids": obsids,
            "source": source,
            "query": query,
            "description": description,
        }
        return dict(self.call("POST", f"api/workbench/teams/{team}/lists", json=body).json())

    def load(self, list_id: str) -> dict[str, Any]:
        """A list with its items and every verdict."""
        return dict(self.call("GET", f"api/workbench/lists/{list_id}").json())

    def changes(self, list_id: str, since: int) -> dict[str, Any]:
        """Verdicts changed after change number ``since``, and the newest number."""
        return dict(
            self.call("GET", f"api/workbench/lists/{list_id}/changes", params={"since": since}).json()
        )

    def put_verdict(self, list_id: str, obsid: int, verdict: dict[str, Any]) -> dict[str, Any]:
        """Record the member's verdict on one item."""
        return dict(
            self.call("PUT", f"api/workbench/lists/{list_id}/items/{int(obsid)}/verdict", json=verdict).json()
        )

    def summary(self, list_id: str) -> dict[str, Any]:
        """Progress per member and disagreements."""
        return dict(self.call("GET", f"api/workbench/lists/{list_id}/summary").json())

    def export(self, list_id: str, fmt: str = "parquet") -> bytes:
        """The result table (Parquet or CSV bytes)."""
        return self.call("GET", f"api/workbench/lists/{list_id}/export", params={"format": fmt}).content

    def spectrum(self, release: str, version: str, obsid: int) -> tuple[list[float], list[float]]:
        """Wavelength and flux of one spectrum (LAMOST's fits2csv columns)."""
        import pyarrow.csv as pacsv

        data = self.call("GET", f"api/{release}/{version}/spectra/{int(obsid)}/csv").content
        table = pacsv.read_csv(io.BytesIO(data))
        return table["Wavelength"].to_pylist(), table["Flux"].to_pylist()

    def history(self) -> list[dict[str, Any]]:
        """The member's searches and queries, and those their teams shared."""
        return list(self.call("GET", "api/history").json()["history"])


# --- where lists come from ------------------------------------------------------------------------


def parse_obsid_text(text: str) -> list[int]:
    """Obsids pasted as text (one a line, or separated by commas or spaces); a bad one is named.

    >>> parse_obsid_text("101001 101002, 101003")
    [101001, 101002, 101003]
    >>> parse_obsid_text("101001 10x2")
    Traceback (most recent call last):
    ...
    ValueError: obsids: '10x2' is not an obsid (a whole number)
    """
    out = []
    for token in re.split(r"[\s,;]+", text.strip()):
        if not token:
            continue
        if not token.isdigit():
            raise ValueError(f"obsids: {token!r} is not an obsid (a whole number)")
        out.append(int(token))
    if not out:
        raise ValueError("obsids: paste at least one obsid")
    return out


def team_spaces() -> dict[str, str]:
    """Each of the member's teams and the URL of its space (``SURVEYHUB_TEAMS``, set by the hub)."""
    try:
        return dict(json.loads(os.environ.get("SURVEYHUB_TEAMS") or "{}"))
    except ValueError:
        return {}


def storage_options() -> dict[str, Any]:
    """fsspec options for the member's spaces (credentials on S3; empty on local disk)."""
    try:
        return dict(json.loads(os.environ.get("SURVEYHUB_CLOUD_STORAGE_OPTIONS") or "{}"))
    except ValueError:
        return {}


@dataclass(frozen=True)
class ManifestSource:
    """An import folder's ``manifest.json`` found in a team space."""

    path: str  # relative to the team space
    release: str
    version: str
    obsids: list[int]
    query: Any = None

    @property
    def label(self) -> str:
        return f"{self.path} ({self.release} {self.version}, {len(self.obsids)} spectra)"


def find_manifests(
    space_url: str, options: dict[str, Any] | None = None, limit: int = 200
) -> list[ManifestSource]:
    """Import manifests under a team space (``**/manifest.json``), newest path names first."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(space_url, **(options or {}))
    root = root.rstrip("/")
    found = []
    try:
        paths = sorted(fs.glob(f"{root}/**/manifest.json"), reverse=True)[:limit]
    except (OSError, ValueError):
        return []
    for path in paths:
        try:
            doc = json.loads(fs.cat_file(path))
            found.append(
                ManifestSource(
                    path=path[len(root) :].lstrip("/"),
                    release=str(doc["release"]),
                    version=str(doc["version"]),
                    obsids=[int(o) for o in doc["obsids"]],
                    query=doc.get("query"),
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not an import's manifest
    return found


def obsids_from_history(client: WorkbenchClient, record: dict[str, Any], limit: int = 5000) -> list[int]:
    """Run a history entry again (a search, or a TAP query) and keep the obsids it finds."""
    if record.get("kind") == "search":
        query = json.loads(record["query"])
        params: dict[str, Any] = {"catalog": query.get("catalog", "lrs"), "columns": "obsid", "limit": limit}
        if query.get("ra") is not None:
            params |= {"ra": query["ra"], "dec": query["dec"], "radius": f"{query.get('radius_deg', 0)}deg"}
        for key, name in (("obsids", "obsid"), ("classes", "class")):
            if query.get(key):
                params[name] = ",".join(map(str, query[key]))
        if query.get("subclass"):
            params["subclass"] = query["subclass"]
        for column, bounds in (query.get("ranges") or {}).items():
            lo, hi = bounds
            if lo is not None:
                params[f"{column}_min"] = lo
            if hi is not None:
                params[f"{column}_max"] = hi
        for column, value in (query.get("snr_min") or {}).items():
            params[f"{column}_min"] = value
        for column, value in (query.get("exact") or {}).items():
            params[column] = value
        body = client.call("GET", f"api/{record['release']}/{record['version']}/search", params=params).json()
        names = [c["name"] for c in body["columns"]]
        return [int(row[names.index("obsid")]) for row in body["rows"]]
    return obsids_from_adql(client, record["query"], limit)


def obsids_from_adql(client: WorkbenchClient, adql: str, limit: int = 5000) -> list[int]:
    """The ``obsid`` column of a TAP query's result."""
    import pyarrow.csv as pacsv

    data = client.call(
        "POST",
        "tap/sync",
        data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": adql, "FORMAT": "csv", "MAXREC": str(limit)},
    ).content
    table = pacsv.read_csv(io.BytesIO(data))
    if "obsid" not in table.column_names:
        raise ValueError(f"query: the result has no obsid column (it has {', '.join(table.column_names)})")
    return [int(o) for o in table["obsid"].to_pylist() if o is not None]


def export_name(target: dict[str, Any], fmt: str) -> str:
    """The file name of a list's export: its title made safe, and its id.

    >>> export_name({"title": "QSO candidates / DR10", "id": "0123456789abcdef"}, "parquet")
    'workbench/qso-candidates-dr10-01234567.parquet'
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", target["title"]).strip("-").lower() or "list"
    return f"workbench/{slug}-{target['id'][:8]}.{fmt}"


def write_export(
    client: WorkbenchClient, target: dict[str, Any], fmt: str = "parquet", space_url: str | None = None
) -> str:
    """Write the list's result into its team's space with the member's own credentials; returns its URL."""
    import fsspec

    space_url = space_url or team_spaces().get(target["team"])
    if not space_url:
        raise WorkbenchUnavailable(f"this server has no space for team {target['team']} (SURVEYHUB_TEAMS)")
    data = client.export(target["id"], fmt)
    url = space_url.rstrip("/") + "/" + export_name(target, fmt)
    fs, path = fsspec.core.url_to_fs(url, **storage_options())
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    partial = path + ".partial"
    with fs.open(partial, "wb") as f:
        f.write(data)
    fs.mv(partial, path)  # a reader never sees half a table
    return url


# --- the app --------------------------------------------------------------------------------------


@dataclass
class ListState:
    """The loaded list as the app holds it: items, everyone's verdicts, the change number seen."""

    meta: dict[str, Any]
    items: list[dict[str, Any]]
    verdicts: dict[tuple[int, str], dict[str, Any]] = field(default_factory=dict)
    seq: int = 0
    summary: dict[str, Any] = field(default_factory=dict)

    def merge(self, verdicts: list[dict[str, Any]], seq: int) -> int:
        """Take in verdicts from the change feed; returns how many were new or changed."""
        changed = 0
        for v in verdicts:
            key = (int(v["obsid"]), v["member"])
            if self.verdicts.get(key, {}).get("seq") != v["seq"]:
                self.verdicts[key] = v
                changed += 1
        self.seq = max(self.seq, seq)
        return changed

    def on(self, obsid: int) -> list[dict[str, Any]]:
        """Every member's verdict on one item, by member name."""
        return sorted((v for (o, _), v in self.verdicts.items() if o == obsid), key=lambda v: v["member"])


def describe_verdict(v: dict[str, Any], catalog_class: str | None) -> str:
    """One verdict in words."""
    cls = f"{catalog_class} confirmed" if v["class_ok"] else f"→ {v['corrected_class']}"
    parts = [cls]
    if v.get("z_fix") is not None:
        parts.append(f"z = {v['z_fix']:g}")
    if v.get("quality_flags"):
        parts.append(", ".join(v["quality_flags"]))
    if v.get("note"):
        parts.append(f"“{v['note']}”")
    return "; ".join(parts)


class WorkbenchApp:
    """The workbench's widgets. ``app.widget`` is what the notebook displays."""

    def __init__(self, client: WorkbenchClient | None = None, *, poll_seconds: float = POLL_SECONDS) -> None:
        import ipywidgets as w

        self.w = w
        self.client = client or WorkbenchClient()
        self.poll_seconds = poll_seconds
        self.state: ListState | None = None
        self.index = 0
        self.me = ""
        self._poller: asyncio.Task[None] | None = None
        self._manifests: list[ManifestSource] = []
        self._history: list[dict[str, Any]] = []

        layout = w.Layout
        self.status = w.HTML(layout=layout(min_height="1.5em")).add_class("wb-status")
        self.team = w.Dropdown(description="Team", options=[]).add_class("wb-team")
        self.list_pick = w.Dropdown(description="List", options=[], layout=layout(width="28em"))
        self.list_pick.add_class("wb-list")
        self.load_button = w.Button(description="Open", icon="folder-open").add_class("wb-open")
        self.refresh_button = w.Button(description="", icon="refresh", layout=layout(width="3em"))

        # making a list
        self.new_title = w.Text(description="Title", placeholder="e.g. QSO candidates").add_class(
            "wb-new-title"
        )
        self.new_version = w.Dropdown(description="Version", options=[]).add_class("wb-new-version")
        self.new_source = w.ToggleButtons(
            options=[
                ("Obsids", "obsids"),
                ("Manifest", "manifest"),
                ("History", "history"),
                ("Query", "query"),
            ],
            value="obsids",
        ).add_class("wb-new-source")
        self.new_obsids = w.Textarea(
            description="Obsids", placeholder="one a line", layout=layout(width="36em", height="7em")
        ).add_class("wb-new-obsids")
        self.new_manifest = w.Dropdown(description="Manifest", options=[], layout=layout(width="36em"))
        self.new_history = w.Dropdown(description="History", options=[], layout=layout(width="36em"))
        self.new_query = w.Textarea(
            description="ADQL",
            placeholder="SELECT TOP 50 obsid FROM demo_v2.lrs WHERE class = 'QSO'",
            layout=layout(width="36em", height="5em"),
        )
        self.source_box = w.VBox([self.new_obsids])
        self.create_button = w.Button(description="Create list", button_style="primary", icon="plus")
        self.create_button.add_class("wb-create")
        self.new_box = w.VBox(
            [self.new_title, self.new_version, self.new_source, self.source_box, self.create_button]
        )
        self.new_panel = w.Accordion(children=[self.new_box], titles=("New list",), selected_index=None)

        # inspecting
        self.prev_button = w.Button(description="Previous", icon="arrow-left").add_class("wb-prev")
        self.next_button = w.Button(description="Next", icon="arrow-right").add_class("wb-next")
        self.position = w.HTML().add_class("wb-position")
        self.facts = w.HTML().add_class("wb-facts")
        self.plot = self._make_plot()
        self.confirm = w.ToggleButtons(
            options=[("Class confirmed", True), ("Class wrong", False)], value=True
        ).add_class("wb-confirm")
        self.corrected = w.Dropdown(description="Is a", options=list(CLASSES), value=None, disabled=True)
        self.corrected.add_class("wb-corrected")
        self.flags = [
            w.Checkbox(description=f, indent=False, layout=layout(width="14em")) for f in QUALITY_FLAGS
        ]
        for box, flag in zip(self.flags, QUALITY_FLAGS, strict=True):
            box.add_class(f"wb-flag-{flag}")
        self.fix_z = w.Checkbox(description="Redshift fix", indent=False).add_class("wb-fix-z")
        self.z_value = w.BoundedFloatText(
            min=-0.1, max=10, step=0.001, disabled=True, layout=layout(width="8em")
        )
        self.z_value.add_class("wb-z")
        self.note = w.Textarea(placeholder="note", layout=layout(width="30em", height="3em")).add_class(
            "wb-note"
        )
        self.save_button = w.Button(description="Save verdict", button_style="success", icon="check")
        self.save_button.add_class("wb-save")
        self.others = w.HTML().add_class("wb-others")
        self.progress = w.HTML().add_class("wb-progress")
        self.disagreements = w.HTML().add_class("wb-disagreements")
        self.export_format = w.Dropdown(
            options=["parquet", "csv"], value="parquet", layout=layout(width="8em")
        )
        self.export_button = w.Button(
            description="Export to team space", icon="download", layout=layout(width="14em")
        ).add_class("wb-export")
        self.export_result = w.HTML().add_class("wb-export-result")

        verdict_form = w.VBox(
            [
                w.HBox([self.confirm, self.corrected]),
                w.GridBox(self.flags, layout=layout(grid_template_columns="repeat(4, 14em)")),
                w.HBox([self.fix_z, self.z_value]),
                self.note,
                self.save_button,
            ]
        )
        self.inspect_box = w.VBox(
            [
                w.HBox([self.prev_button, self.position, self.next_button]),
                w.HBox([self.plot, w.VBox([self.facts, self.others], layout=layout(width="26em"))]),
                verdict_form,
                w.HBox([self.progress, self.disagreements]),
                w.HBox([self.export_format, self.export_button, self.export_result]),
            ],
            layout=layout(display="none"),
        ).add_class("wb-inspect")
        self.widget = w.VBox(
            [
                w.HTML("<h2>Team inspection workbench</h2>"),
                w.HBox([self.team, self.list_pick, self.load_button, self.refresh_button]),
                self.new_panel,
                self.status,
                self.inspect_box,
            ]
        ).add_class("wb-app")

        self.team.observe(lambda _: self._guard(self._team_changed), "value")
        self.new_source.observe(lambda _: self._guard(self._source_changed), "value")
        self.confirm.observe(lambda c: setattr(self.corrected, "disabled", bool(c["new"])), "value")
        self.fix_z.observe(lambda c: setattr(self.z_value, "disabled", not c["new"]), "value")
        self.load_button.on_click(lambda _: self._guard(self.open_selected))
        self.refresh_button.on_click(lambda _: self._guard(self._team_changed))
        self.create_button.on_click(lambda _: self._guard(self.create_from_form))
        self.prev_button.on_click(lambda _: self._guard(lambda: self.go(self.index - 1)))
        self.next_button.on_click(lambda _: self._guard(lambda: self.go(self.index + 1)))
        self.save_button.on_click(lambda _: self._guard(self.save_verdict))
        self.export_button.on_click(lambda _: self._guard(self.export))

        self._guard(self._start)

    # --- plumbing ---

    def _guard(self, fn: Callable[[], Any]) -> None:
        """Run a step; a refusal or an outage is said in the status line, not as a traceback."""
        try:
            fn()
        except (WorkbenchRefused, WorkbenchUnavailable, ValueError) as exc:
            self.say(str(exc), error=True)

    def say(self, text: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "#1b5e20"
        kind = "error" if error else "ok"
        self.status.value = (
            f'<span class="wb-message" data-kind="{kind}" style="color:{colour}">{html.escape(text)}</span>'
        )

    def _make_plot(self) -> Any:
        import bqplot as bq

        x, y = bq.LinearScale(), bq.LinearScale()
        self.flux_line = bq.Lines(x=[], y=[], scales={"x": x, "y": y}, colors=["#1f3b73"], stroke_width=1)
        self.line_marks = bq.Lines(
            x=[], y=[], scales={"x": x, "y": y}, colors=["#c62828"], line_style="dashed", opacities=[0.6]
        )
        axes = [
            bq.Axis(scale=x, label="wavelength (Å)"),
            bq.Axis(scale=y, orientation="vertical", label="flux"),
        ]
        fig = bq.Figure(
            marks=[self.flux_line, self.line_marks],
            axes=axes,
            interaction=bq.interacts.PanZoom(scales={"x": [x], "y": [y]}),
            layout=self.w.Layout(width="760px", height="340px"),
            fig_margin={"top": 20, "bottom": 50, "left": 60, "right": 20},
        )
        return fig.add_class("wb-plot")

    def _start(self) -> None:
        who = self.client.call("GET", "api/workbench/teams").json()
        teams, self.me = list(who["teams"]), who.get("user") or ""
        versions = self.client.versions()
        self.new_version.options = versions
        if versions:
            self.new_version.value = versions[-1]
        if not teams:
            self.say(
                "You are in no team: an admin adds you with `surveyhub team add <team> <you>`.", error=True
            )
            return
        self.team.options = teams
        self.team.value = teams[0]

    def _team_changed(self) -> None:
        team = self.team.value
        if not team:
            return
        lists = self.client.lists(team)
        self.list_pick.options = [
            (f"{t['title']} ({t['n_items']}, by {t['created_by']})", t["id"]) for t in lists
        ]
        self.list_pick.value = lists[0]["id"] if lists else None
        self._source_changed()
        self.say(f"{len(lists)} list(s) in team {team}")

    def _source_changed(self) -> None:
        source = self.new_source.value
        if source == "manifest":
            space = team_spaces().get(self.team.value or "")
            self._manifests = find_manifests(space, storage_options()) if space else []
            self.new_manifest.options = [(m.label, i) for i, m in enumerate(self._manifests)]
            self.source_box.children = [self.new_manifest]
        elif source == "history":
            self._history = self.client.history()
            self.new_history.options = [
                (f"{r['kind']} {r.get('release') or ''} {r.get('version') or ''}: {r['query'][:70]}", i)
                for i, r in enumerate(self._history)
            ]
            self.source_box.children = [self.new_history]
        elif source == "query":
            self.source_box.children = [self.new_query]
        else:
            self.source_box.children = [self.new_obsids]

    # --- lists ---

    def create_from_form(self) -> None:
        """Make a list from the form's source, then open it."""
        if not self.team.value:
            raise ValueError("team: choose a team first")
        if not self.new_version.value:
            raise ValueError("version: no release version to read")
        release, version = self.new_version.value.split("/", 1)
        source = self.new_source.value
        query = description = None
        if source == "obsids":
            obsids = parse_obsid_text(self.new_obsids.value)
            description = "pasted obsids"
        elif source == "manifest":
            if self.new_manifest.value is None:
                raise ValueError("manifest: no import manifest in the team space")
            m = self._manifests[self.new_manifest.value]
            release, version, obsids = m.release, m.version, m.obsids
            query = json.dumps(m.query) if m.query is not None else None
            description = f"import manifest {m.path}"
        elif source == "history":
            if self.new_history.value is None:
                raise ValueError("history: no entry chosen")
            record = self._history[self.new_history.value]
            release, version = record.get("release") or release, record.get("version") or version
            obsids = obsids_from_history(self.client, record)
            query, description = record["query"], f"history entry {record['id']} ({record['kind']})"
        else:
            if not self.new_query.value.strip():
                raise ValueError("query: write an ADQL query that returns obsids")
            obsids = obsids_from_adql(self.client, self.new_query.value)
            query, description = self.new_query.value, "TAP query"
        if not obsids:
            raise ValueError(f"{source}: found no obsids")
        title = self.new_title.value.strip() or f"{source} {release} {version}"
        made = self.client.create_list(
            self.team.value,
            title=title,
            release=release,
            version=version,
            obsids=obsids,
            source=source,
            query=query,
            description=description,
        )
        self._team_changed()
        self.new_panel.selected_index = None  # folded away: the list is what matters now
        self.list_pick.value = made["id"]
        self.open(made["id"])
        self.say(f"Made list “{made['title']}” with {made['n_items']} spectra")

    def open_selected(self) -> None:
        if not self.list_pick.value:
            raise ValueError("list: the team has no list yet; make one under “New list”")
        self.open(self.list_pick.value)

    def open(self, list_id: str) -> None:
        """Load a list and start following teammates' verdicts on it."""
        loaded = self.client.load(list_id)
        self.state = ListState(meta=loaded, items=loaded["items"])
        self.state.merge(loaded["verdicts"], loaded["seq"])
        self.state.summary = self.client.summary(list_id)
        self.inspect_box.layout.display = "flex"
        mine = {o for (o, m) in self.state.verdicts if m == self.me}
        first_open = next((i for i, item in enumerate(self.state.items) if item["obsid"] not in mine), 0)
        self.go(first_open)
        self.say(
            f"Opened “{loaded['title']}” ({loaded['release']} {loaded['version']}, "
            f"{len(loaded['items'])} spectra)"
        )
        self.start_polling()

    # --- stepping ---

    @property
    def item(self) -> dict[str, Any]:
        assert self.state is not None
        return self.state.items[self.index]

    def go(self, index: int) -> None:
        """Show item ``index`` (clamped to the list): its spectrum, facts, and the verdicts on it."""
        if self.state is None:
            return
        self.index = max(0, min(index, len(self.state.items) - 1))
        item = self.item
        self.position.value = (
            f'<b class="wb-pos" data-index="{self.index}" data-obsid="{item["obsid"]}">'
            f"{self.index + 1} / {len(self.state.items)}</b>"
        )
        self.prev_button.disabled = self.index == 0
        self.next_button.disabled = self.index == len(self.state.items) - 1
        z = item.get("z")
        self.facts.value = (
            f'<table class="wb-facts-table" data-obsid="{item["obsid"]}">'
            f"<tr><th>obsid</th><td>{item['obsid']}</td></tr>"
            f'<tr><th>class</th><td class="wb-class">{html.escape(str(item.get("class")))}</td></tr>'
            f"<tr><th>subclass</th><td>{html.escape(str(item.get('subclass')))}</td></tr>"
            f"<tr><th>z</th><td>{'' if z is None else f'{z:.4f}'}</td></tr></table>"
        )
        self._fill_form(self.state.verdicts.get((item["obsid"], self.me)))
        self._draw_spectrum(item)
        self._render_verdicts()

    def _fill_form(self, mine: dict[str, Any] | None) -> None:
        self.confirm.value = True if mine is None else bool(mine["class_ok"])
        self.corrected.value = None if mine is None else mine.get("corrected_class")
        flags = set(mine.get("quality_flags") or []) if mine else set()
        for box, flag in zip(self.flags, QUALITY_FLAGS, strict=True):
            box.value = flag in flags
        self.fix_z.value = mine is not None and mine.get("z_fix") is not None
        self.z_value.value = (mine or {}).get("z_fix") or round(self.item.get("z") or 0.0, 4)
        self.note.value = (mine or {}).get("note") or ""

    def _draw_spectrum(self, item: dict[str, Any]) -> None:
        assert self.state is not None
        try:
            wave, flux = self.client.spectrum(
                self.state.meta["release"], self.state.meta["version"], item["obsid"]
            )
        except WorkbenchRefused as exc:
            self.flux_line.x, self.flux_line.y = [], []
            self.line_marks.x, self.line_marks.y = [], []
            self.facts.value += (
                f'<div class="wb-nospectrum" style="color:#b00020">No spectrum: {html.escape(str(exc))}</div>'
            )
            return
        self.flux_line.x, self.flux_line.y = wave, flux
        z = item.get("z") or 0.0
        lo, hi = min(wave), max(wave)
        fmin, fmax = min(flux), max(flux)
        xs = [[rest * (1 + z)] * 2 for rest in LINES.values() if lo <= rest * (1 + z) <= hi]
        self.line_marks.x = xs or [[lo, lo]]
        self.line_marks.y = [[fmin, fmax]] * len(xs) if xs else [[fmin, fmin]]

    # --- verdicts ---

    def form_verdict(self) -> dict[str, Any]:
        """The verdict the form holds, as the archive takes it."""
        ok = bool(self.confirm.value)
        if not ok and not self.corrected.value:
            raise ValueError("class: choose the class it is, or confirm the catalog's")
        return {
            "class_ok": ok,
            "corrected_class": None if ok else self.corrected.value,
            "quality_flags": [f for box, f in zip(self.flags, QUALITY_FLAGS, strict=True) if box.value],
            "z_fix": float(self.z_value.value) if self.fix_z.value else None,
            "note": self.note.value.strip(),
        }

    def save_verdict(self) -> None:
        """Record the member's verdict on the current item, then move on to the next."""
        assert self.state is not None
        item = self.item
        saved = self.client.put_verdict(self.state.meta["id"], item["obsid"], self.form_verdict())
        self.state.merge([saved], self.state.seq)
        self.state.summary = self.client.summary(self.state.meta["id"])
        self.say(f"Saved your verdict on {item['obsid']}")
        if self.index < len(self.state.items) - 1:
            self.go(self.index + 1)
        else:
            self._render_verdicts()

    def _render_verdicts(self) -> None:
        """The verdicts on the current item (with the disagreement highlight), progress, disagreements."""
        if self.state is None:
            return
        item = self.item
        contested = {d["obsid"]: d for d in self.state.summary.get("disagreements", [])}
        rows = []
        for v in self.state.on(item["obsid"]):
            who = html.escape(v["member"]) + (" (you)" if v["member"] == self.me else "")
            rows.append(
                f'<tr class="wb-verdict" data-member="{html.escape(v["member"])}">'
                f"<td><b>{who}</b></td><td>{html.escape(describe_verdict(v, item.get('class')))}</td></tr>"
            )
        table = "".join(rows) or '<tr><td class="wb-none">No verdicts yet</td></tr>'
        if item["obsid"] in contested:
            reasons = "; ".join(contested[item["obsid"]]["reasons"])
            head = (
                '<div class="wb-disagreement" style="color:#b00020">'
                f"<b>Disagreement</b>: {html.escape(reasons)}</div>"
            )
            style = "border:2px solid #b00020;padding:4px"
        else:
            head, style = "", "border:1px solid #ccc;padding:4px"
        self.others.value = (
            f'<div class="wb-others-box" data-obsid="{item["obsid"]}" '
            f'data-contested="{int(item["obsid"] in contested)}"'
            f' style="{style}"><b>Verdicts</b>{head}<table>{table}</table></div>'
        )
        progress = self.state.summary.get("progress", {})
        total = len(self.state.items)
        bars = "".join(
            f'<div class="wb-member-progress" data-member="{html.escape(m)}" data-done="{p["done"]}">'
            f"{html.escape(m)}: {p['done']} / {total}"
            f'<div style="background:#eee;width:12em;height:.6em"><div style="background:#2e7d32;height:.6em;'
            f'width:{100 * p["done"] / max(total, 1):.0f}%"></div></div></div>'
            for m, p in progress.items()
        )
        self.progress.value = f"<div><b>Progress</b>{bars or '<div>nobody yet</div>'}</div>"
        listed = "".join(
            f'<li data-obsid="{d["obsid"]}">#{d["position"] + 1} {d["obsid"]}: '
            f"{html.escape('; '.join(d['reasons']))}</li>"
            for d in contested.values()
        )
        self.disagreements.value = (
            f'<div style="margin-left:2em" data-count="{len(contested)}" class="wb-disagreement-list">'
            f"<b>Disagreements ({len(contested)})</b><ul>{listed}</ul></div>"
        )

    # --- live updates ---

    def poll_once(self) -> int:
        """Ask for verdicts made since the last look; returns how many arrived (and redraws if any)."""
        if self.state is None:
            return 0
        got = self.client.changes(self.state.meta["id"], self.state.seq)
        changed = self.state.merge(got["verdicts"], got["seq"])
        if changed:
            self.state.summary = self.client.summary(self.state.meta["id"])
            self._render_verdicts()
        return changed

    def start_polling(self) -> None:
        """Follow the list: a task on the kernel's event loop polls the change feed (off the loop)."""
        if self._poller is not None and not self._poller.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = asyncio.get_event_loop()
        self._poller = loop.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_seconds)
            if self.state is None:
                continue
            list_id = self.state.meta["id"]
            try:
                got = await loop.run_in_executor(None, self.client.changes, list_id, self.state.seq)
                if self.state is None or self.state.meta["id"] != list_id:
                    continue
                if self.state.merge(got["verdicts"], got["seq"]):
                    self.state.summary = await loop.run_in_executor(None, self.client.summary, list_id)
                    self._render_verdicts()
            except (WorkbenchRefused, WorkbenchUnavailable) as exc:  # an outage: keep trying, say so
                self.say(f"live updates paused: {exc}", error=True)

    # --- export ---

    def export(self) -> None:
        """Write the result table into the team space."""
        if self.state is None:
            raise ValueError("export: open a list first")
        url = write_export(self.client, self.state.meta, self.export_format.value)
        shown = url.split("/teams/", 1)[-1] if "/teams/" in url else url
        self.export_result.value = (
            f'<span class="wb-exported" data-url="{html.escape(url)}">Written: {html.escape(shown)}</span>'
        )
        self.say(f"Exported to {url}")


__all__ = [
    "WorkbenchApp",
    "WorkbenchClient",
    "find_manifests",
    "obsids_from_adql",
    "obsids_from_history",
    "parse_obsid_text",
    "write_export",
]
