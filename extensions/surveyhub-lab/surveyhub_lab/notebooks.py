"""The "Open in notebook" action: a notebook whose first cells reproduce the panel's search.

The notebook has to keep working once it leaves the panel: shared with a teammate, run next year, read by
a referee. So it names everything it needs (release, version, the search as the archive's API takes it)
and takes addresses and the token from the environment the hub gives every server
(``SURVEYHUB_ARCHIVE_URL``, ``SURVEYHUB_TAP_URL``, ``JUPYTERHUB_API_TOKEN``; see
``surveyhub.hub.environment``), never from this server's settings. Its cells:

1. what it reproduces (markdown);
2. the search through the archive's search API, all rows, as Parquet (the panel's own query, so the same
   rows and order);
3. the same query in ADQL through pyvo's TAP client (what TOPCAT or a script elsewhere would send), checked
   to give the same rows, when the search can be written in ADQL;
4. when an import was made: its ``manifest.json``, ``catalog.parquet`` and the first spectrum, read from the
   import folder with the user's own storage options, each file checked against the manifest's size.

It is written atomically next to what it loads (temporary name, then a hard link to a name nobody holds,
so neither a half-written notebook nor an overwritten one can ever be seen).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from surveyhub_lab.errors import Refused

#: Search parameters the notebook's cells are built from: the archive's search API (surveyhub.archive.search).
PAGING = ("offset", "limit", "count", "format")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_TRIES = 1000


def check_folder(folder: Any) -> str:
    """A folder of the Jupyter server's root, as a relative '/'-separated path ('' is the root itself)."""
    if folder is None:
        return ""
    if not isinstance(folder, str):
        raise Refused(400, "request_invalid", f"folder: {folder!r} is not a folder name")
    text = folder.strip().strip("/")
    if _CONTROL.search(text):
        raise Refused(400, "request_invalid", "folder: control characters are not allowed")
    if "://" in text or folder.strip().startswith(("/", "~")) or "\\" in text:
        raise Refused(400, "request_invalid", f"folder: {folder!r} must be relative to your home (no URL)")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused(
            400, "request_invalid", "folder: '..' is not allowed: the folder must stay in your home"
        )
    if any(p.startswith(".") for p in parts):
        raise Refused(400, "request_invalid", f"folder: {folder!r} names a hidden folder")
    return "/".join(parts)


def jupyter_path(local: Path, root: Path) -> str | None:
    """Where a local folder appears in the file browser (relative to ``root``), or None when it does not.

    The hub links the user's cloud folder at ``~/cloud`` and each team folder at ``~/teams/<team>``
    (``surveyhub.hub.workspace``), so a folder is looked for under the root itself and under those links.
    """
    target = local.resolve()
    candidates = [("", root)]
    candidates.append(("cloud", root / "cloud"))
    teams = root / "teams"
    if teams.is_dir():
        candidates += [(f"teams/{entry.name}", entry) for entry in sorted(teams.iterdir())]
    for prefix, base in candidates:
        try:
            relative = target.relative_to(base.resolve())
        except (ValueError, OSError):
            continue
        if any(part.startswith(".") for part in relative.parts):
            continue  # hidden from the file browser
        return "/".join([prefix, *relative.parts] if prefix else relative.parts)
    return None


def _literal(value: Any) -> str:
    """An ADQL literal of a checked search value."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def adql_for(request: Any, schema: str, columns: Sequence[str], distance: str) -> str | None:
    """The search ``request`` (a ``surveyhub.archive.search.SearchRequest``) in ADQL, or None when it
    uses something ADQL says differently (the designation match ignores spaces, for one)."""
    if "designation" in request.exact:
        return None
    cone = request.ra is not None and request.radius_deg is not None
    centre = f"POINT('ICRS', {request.ra!r}, {request.dec!r})" if cone else ""
    distance_column = f'DISTANCE(POINT(\'ICRS\', "ra", "dec"), {centre}) * 3600 AS {distance}'
    select = []
    for name in columns:
        if name == distance:
            if not cone:
                return None
            select.append(distance_column)
        else:
            select.append(f'"{name}"')
    where = []
    if cone:
        where.append(
            f'1 = CONTAINS(POINT(\'ICRS\', "ra", "dec"), '
            f"CIRCLE('ICRS', {request.ra!r}, {request.dec!r}, {request.radius_deg!r}))"
        )
    if request.obsids is not None:
        if not request.obsids:
            return None
        where.append(f'"obsid" IN ({", ".join(str(int(o)) for o in request.obsids)})')
    if request.classes:
        where.append(f'"class" IN ({", ".join(_literal(c) for c in request.classes)})')
    if request.subclass:
        where.append(f'"subclass" ILIKE {_literal(request.subclass.replace("*", "%"))}')
    for name, value in request.exact.items():
        where.append(f'"{name}" = {_literal(value)}')
    for name, (low, high) in request.ranges.items():
        if low is not None:
            where.append(f'"{name}" >= {_literal(low)}')
        if high is not None:
            where.append(f'"{name}" <= {_literal(high)}')
    for band, value in request.snr_min.items():
        where.append(f'"{band}" >= {_literal(value)}')
    sort = request.sort or ([(distance, True)] if cone else [])
    if cone and distance not in columns and any(c == distance for c, _ in sort):
        # the search sorts by the distance without showing it; ADQL sorts by what is selected
        select.append(distance_column)
    text = f"SELECT {', '.join(select)}\nFROM {schema}.{request.catalog}"
    if where:
        text += "\nWHERE " + "\n  AND ".join(where)
    if sort:
        text += "\nORDER BY " + ", ".join(
            (c if c == distance else f'"{c}"') + ("" if asc else " DESC") for c, asc in sort
        )
    return text


_SEARCH_CELL = '''\
import io
import json
import os
import urllib.parse
import urllib.request

import pyarrow.parquet as pq

ARCHIVE = os.environ["SURVEYHUB_ARCHIVE_URL"]  # the hub sets these in every server
TOKEN = os.environ.get("SURVEYHUB_ARCHIVE_TOKEN") or os.environ["JUPYTERHUB_API_TOKEN"]

release, version = {release!r}, {version!r}
search = {search}


def archive_get(path, params):
    """GET from the archive service with your token; the archive's error message on a refusal."""
    url = ARCHIVE + path + "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, headers={{"Authorization": f"token {{TOKEN}}"}})
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            return answer.read()
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"the archive refused {{path}}: {{error.read().decode()}}") from None


def search_all(release, version, search):
    """Every row of a search (not a page), as a pyarrow Table with the columns' units in its metadata."""
    path = f"api/{{release}}/{{version}}/search"
    total = json.loads(archive_get(path, {{**search, "limit": 0, "history": 0}}))["total"]
    return pq.read_table(io.BytesIO(archive_get(path, {{**search, "limit": total, "format": "parquet"}})))


table = search_all(release, version, search)
print(f"{{table.num_rows}} rows of {{release}} {{version}} {{search.get('catalog', 'lrs')}}")
table.to_pandas().head(10)
'''

_TAP_CELL = '''\
import pyvo
import requests

session = requests.Session()
session.headers["Authorization"] = f"token {{TOKEN}}"
tap = pyvo.dal.TAPService(os.environ["SURVEYHUB_TAP_URL"], session=session)
adql = """
{adql}
"""
tap_table = tap.run_sync(adql, maxrec=max(table.num_rows, 1)).to_table()
same = sorted(tap_table["obsid"].tolist()) == sorted(table["obsid"].to_pylist())
print(f"TAP: {{len(tap_table)}} rows, the same obsids as the search: {{same}}")
'''

_IMPORT_CELL = """\
import fsspec

from surveyhub.releases.spectrum import read_spectrum

imported = {url!r}  # the import folder ({where})
storage_options = json.loads(os.environ.get("SURVEYHUB_CLOUD_STORAGE_OPTIONS") or "{{}}")
fs, folder = fsspec.core.url_to_fs(imported, **storage_options)
folder = folder.rstrip("/")
manifest = json.loads(fs.cat_file(f"{{folder}}/manifest.json"))
catalog = pq.read_table(f"{{folder}}/catalog.parquet", filesystem=fs)
sizes = {{entry["path"]: fs.size(f"{{folder}}/{{entry['path']}}") for entry in manifest["files"]}}
whole = all(sizes[entry["path"]] == entry["size"] for entry in manifest["files"])
print(f"imported {{len(manifest['files'])}} spectra of {{manifest['release']}} {{manifest['version']}}; "
      f"every file whole: {{whole}}; catalog rows: {{catalog.num_rows}}")
print("imported obsids in the search result:", set(manifest["obsids"]) <= set(table["obsid"].to_pylist()))
first = manifest["files"][0]
with fs.open(f"{{folder}}/{{first['path']}}", "rb") as fh:
    spectrum = read_spectrum(fh)
print(f"obsid {{first['obsid']}}: {{len(spectrum.wavelength)}} pixels, "
      f"{{spectrum.wavelength.min():.0f}}-{{spectrum.wavelength.max():.0f}} Angstrom")
"""


def build_notebook(
    *,
    release: str,
    version: str,
    search: Mapping[str, str],
    total: int,
    adql: str | None,
    imported: Mapping[str, Any] | None,
    import_where: str,
) -> nbformat.NotebookNode:
    """The notebook of one search (and its import): cells that run top to bottom in the user's server."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    catalog = search.get("catalog", "lrs")
    lines = [
        f"# {release} {version} {catalog}: a search from the Survey data panel",
        "",
        f"Made on {when}. The panel's search matched **{total}** rows. The first cell asks the archive's"
        " search API for all of them again, with your own token"
        + (", the second sends the same query in ADQL to the TAP service" if adql else "")
        + (
            ", and the last loads the spectra imported into"
            f" `{imported['folder']}` ({import_where}) with their manifest and catalog table."
            if imported
            else "."
        ),
        "",
        "Search: " + ", ".join(f"`{k}={v}`" for k, v in search.items()),
    ]
    cells = [
        new_markdown_cell("\n".join(lines)),
        new_code_cell(
            _SEARCH_CELL.format(
                release=release, version=version, search=json.dumps(dict(search), indent=4)
            ).rstrip()
        ),
    ]
    if adql:
        cells.append(new_code_cell(_TAP_CELL.format(adql=adql).rstrip()))
    if imported:
        cells.append(new_code_cell(_IMPORT_CELL.format(url=imported["url"], where=import_where).rstrip()))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["surveyhub"] = {
        "release": release,
        "version": version,
        "search": dict(search),
        "total": total,
        "import": imported.get("id") if imported else None,
        "created": when,
    }
    return nb


def write_new_notebook(directory: Path, stem: str, nb: nbformat.NotebookNode) -> Path:
    """Write ``nb`` as ``<stem>.ipynb`` in ``directory`` (``<stem>-2.ipynb``... when taken); the path.

    The notebook is written under a hidden temporary name and then hard-linked to its final name, which
    fails when the name exists: no notebook is ever overwritten, and none is seen half-written.
    """
    nbformat.validate(nb)
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{stem}.{secrets.token_hex(6)}.ipynb.part"
    temp.write_text(nbformat.writes(nb), encoding="utf-8")
    try:
        for n in range(1, MAX_NAME_TRIES + 1):
            final = directory / (f"{stem}.ipynb" if n == 1 else f"{stem}-{n}.ipynb")
            try:
                os.link(temp, final)
            except FileExistsError:
                continue
            return final
    finally:
        temp.unlink(missing_ok=True)
    raise Refused(409, "notebook_exists", f"{directory}: {stem}.ipynb and {MAX_NAME_TRIES - 1} others exist")
