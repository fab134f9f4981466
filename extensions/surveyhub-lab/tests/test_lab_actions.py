"""The panel's result actions in a real Jupyter Server against a real archive: download, notebook, share.

The downloaded tables are parsed by the libraries people open them with (the csv module, astropy's
VOTable reader, pyarrow) and must hold exactly the search's rows; the generated notebook is executed top
to bottom by nbclient in a real kernel, with the environment the hub gives a user's server, and must find
exactly the rows the panel's search found.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from lab_support import Spectra, ended, wait_for
from tornado.httpclient import HTTPClientError

from tests.support.archive import ALICE, BOB, CAROL

pytestmark = pytest.mark.xdist_group("lab")

#: A search with more rows than a panel page (and than the archive's default page of 100).
STARS = {"release": "DEMO", "version": "v1", "class": "STAR", "snrg_min": "2"}


async def search_all(api: Any, params: dict[str, str]) -> tuple[int, list[int]]:
    """The search's exact total and its obsids in the archive's order, as the panel's route answers."""
    status, counted = await api("surveyhub", "search", params=params | {"limit": "0"})
    assert status == 200, counted
    total = counted["total"]
    status, body = await api("surveyhub", "search", params=params | {"limit": str(total), "columns": "obsid"})
    assert status == 200, body
    return total, [row[0] for row in body["rows"]]


async def fetch_error(jp_fetch: Any, *parts: str, **kwargs: Any) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as refused:
        await jp_fetch(*parts, **kwargs)
    return refused.value.code, json.loads(refused.value.response.body)


async def test_download_streams_every_row_in_each_format(api: Any, jp_fetch: Any) -> None:
    from astropy.io.votable import parse_single_table

    total, obsids = await search_all(api, STARS)
    assert total > 100  # more than a page: the download is the whole result
    parsed: dict[str, list[int]] = {}
    for fmt in ("csv", "votable", "parquet"):
        response = await jp_fetch("surveyhub", "download", params=STARS | {"format": fmt})
        assert response.code == 200
        disposition = response.headers["Content-Disposition"]
        extension = {"csv": "csv", "votable": "vot", "parquet": "parquet"}[fmt]
        assert disposition.startswith('attachment; filename="DEMO-v1-lrs-')
        assert disposition.endswith(f'.{extension}"'), disposition
        assert f"-{total}rows-" in disposition
        assert response.headers["X-Surveyhub-Total-Rows"] == str(total)
        # streamed as it came (chunked), not buffered into one body with a length
        assert response.headers.get("Transfer-Encoding") == "chunked", dict(response.headers)
        assert "Content-Length" not in response.headers
        if fmt == "csv":
            assert response.headers["Content-Type"].startswith("text/csv")
            rows = list(csv.DictReader(io.StringIO(response.body.decode())))
            assert {"obsid", "class", "snrg"} <= set(rows[0])
            assert {r["class"] for r in rows} == {"STAR"}
            parsed[fmt] = [int(r["obsid"]) for r in rows]
        elif fmt == "votable":
            assert response.headers["Content-Type"] == "application/x-votable+xml"
            table = parse_single_table(io.BytesIO(response.body)).to_table()
            assert table["snrg"].unit is not None or "snrg" in table.colnames
            parsed[fmt] = [int(o) for o in table["obsid"]]
        else:
            table = pq.read_table(io.BytesIO(response.body))
            assert min(table["snrg"].to_pylist()) >= 2
            parsed[fmt] = table["obsid"].to_pylist()
    for fmt, got in parsed.items():
        assert len(got) == total, fmt
        assert got == obsids, f"{fmt}: not the search's rows in the search's order"


@pytest.mark.parametrize("lab_extra", [{"download_max_rows": 10}])
async def test_download_refusals_name_the_problem(api: Any, jp_fetch: Any) -> None:
    status, body = await fetch_error(jp_fetch, "surveyhub", "download", params=STARS | {"format": "xlsx"})
    assert (status, body["code"]) == (400, "format_invalid")
    assert "'xlsx'" in body["error"]
    assert "csv, votable, parquet" in body["error"]
    status, body = await fetch_error(jp_fetch, "surveyhub", "download", params=STARS)
    assert (status, body["code"]) == (400, "format_invalid")
    bad = STARS | {"format": "csv", "snrg_min": "lots"}
    status, body = await fetch_error(jp_fetch, "surveyhub", "download", params=bad)
    assert (status, body["code"]) == (400, "search_refused")
    assert body["error"].startswith("snrg_min:")
    status, body = await fetch_error(
        jp_fetch, "surveyhub", "download", params=STARS | {"format": "csv", "version": "../v1"}
    )
    assert (status, body["code"]) == (400, "request_invalid")
    total, _ = await search_all(api, STARS)
    status, body = await fetch_error(jp_fetch, "surveyhub", "download", params=STARS | {"format": "csv"})
    assert (status, body["code"]) == (413, "download_too_large")
    assert f"{total:,} rows" in body["error"]
    assert "10 a download" in body["error"]
    small = {"release": "DEMO", "version": "v1", "obsid": "1,2,3", "format": "parquet"}  # no such obsids
    response = await jp_fetch("surveyhub", "download", params=small)
    assert pq.read_table(io.BytesIO(response.body)).num_rows == 0


@pytest.mark.parametrize("lab_user", ["bob"])
async def test_download_of_a_version_the_user_may_not_read_is_refused(jp_fetch: Any, lab_user: str) -> None:
    status, body = await fetch_error(
        jp_fetch, "surveyhub", "download", params=STARS | {"version": "v0", "format": "csv"}
    )
    assert status == 404
    assert "DEMO/v0" in body["error"]


async def run_notebook(path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    """Execute a notebook top to bottom in a fresh kernel with the user's server's environment."""
    import nbformat
    from nbclient import NotebookClient

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    await client.async_execute()
    return nb


def outputs(nb: Any) -> str:
    return "\n".join(
        o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
    )


async def test_open_in_notebook_reproduces_the_search_and_loads_the_import(
    api: Any,
    cloud: Path,
    spectra: Spectra,
    jp_root_dir: Path,
    lab_config: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the hub links the user's cloud folder at ~/cloud (surveyhub.hub.workspace)
    (cloud / "users" / "alice").mkdir(parents=True, exist_ok=True)
    (jp_root_dir / "cloud").symlink_to(cloud / "users" / "alice")
    centre = spectra.with_files[("v1", "lrs")][0]
    status, first = await api(
        "surveyhub", "search", params={"release": "DEMO", "version": "v1", "obsid": str(centre)}
    )
    ra, dec = first["rows"][0][2], first["rows"][0][3]
    search = {"catalog": "lrs", "pos": f"{ra} {dec}", "radius": "3deg", "snrg_min": "1"}
    total, panel_obsids = await search_all(api, {"release": "DEMO", "version": "v1", **search})
    picked = [o for o in panel_obsids if o in set(spectra.with_files[("v1", "lrs")])][:4]
    assert len(picked) == 4
    body = {"release": "DEMO", "version": "v1", "obsids": picked, "destination": {"folder": "imports/nb"}}
    status, started = await api("surveyhub", "imports", method="POST", body=body | {"query": search})
    assert status == 202, started
    assert (await wait_for(api, started["id"], ended))["status"] == "completed"

    request = {"release": "DEMO", "version": "v1", "search": search | {"offset": "25", "limit": "25"}}
    status, made = await api(
        "surveyhub", "notebooks", method="POST", body=request | {"import": started["id"]}
    )
    assert status == 201, made
    assert made["path"] == "cloud/imports/nb/DEMO-v1-lrs-search.ipynb"  # beside the import, by default
    assert made["total"] == total
    assert "CONTAINS(POINT('ICRS'" in made["adql"]
    path = jp_root_dir / made["path"]
    assert not list(path.parent.glob(".*.part"))

    # what the panel found, checked by a cell appended to the generated ones
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('RESULT', json.dumps(table['obsid'].to_pylist()))"))
    nbformat.write(nb, path)
    env = {
        "SURVEYHUB_ARCHIVE_URL": lab_config["archive_url"],
        "SURVEYHUB_TAP_URL": lab_config["tap_url"],
        "JUPYTERHUB_API_TOKEN": ALICE,
        "SURVEYHUB_CLOUD_STORAGE_OPTIONS": "{}",
    }
    ran = await run_notebook(path, env, monkeypatch)
    text = outputs(ran)
    result = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    assert result == panel_obsids  # every row (not the page the panel showed), in the search's order
    assert f"{total} rows of DEMO v1 lrs" in text
    assert "the same obsids as the search: True" in text
    assert "imported 4 spectra of DEMO v1; every file whole: True; catalog rows: 4" in text
    assert "imported obsids in the search result: True" in text
    assert "3909 pixels" in text

    # a second notebook of the same search gets a new name; the first is untouched
    before = path.read_bytes()
    status, again = await api(
        "surveyhub", "notebooks", method="POST", body=request | {"import": started["id"]}
    )
    assert status == 201, again
    assert again["path"] == "cloud/imports/nb/DEMO-v1-lrs-search-2.ipynb"
    assert path.read_bytes() == before

    # a folder of the user's choice, and no import: the notebook only searches
    status, other = await api("surveyhub", "notebooks", method="POST", body=request | {"folder": "work/nbs"})
    assert status == 201, other
    assert other["path"] == "work/nbs/DEMO-v1-lrs-search.ipynb"
    assert len(nbformat.read(jp_root_dir / other["path"], as_version=4).cells) == 3


async def test_open_in_notebook_refusals(api: Any, jp_root_dir: Path) -> None:
    base = {"release": "DEMO", "version": "v1", "search": {"class": "STAR"}}
    for change, status, code, words in (
        ({"folder": "../elsewhere"}, 400, "request_invalid", "'..' is not allowed"),
        ({"folder": "/etc"}, 400, "request_invalid", "relative"),
        ({"folder": ".hidden"}, 400, "request_invalid", "hidden"),
        ({"search": "class=STAR"}, 400, "request_invalid", "search:"),
        ({"search": {"snrg_min": "lots"}}, 400, "search_refused", "snrg_min:"),
        ({"version": "v9"}, 404, "search_refused", "DEMO/v9"),
        ({"import": "f" * 32}, 404, "import_not_found", "f" * 32),
        ({"import": "nope"}, 400, "request_invalid", "import:"),
    ):
        answer_status, answer = await api("surveyhub", "notebooks", method="POST", body=base | change)
        assert (answer_status, answer["code"]) == (status, code), (change, answer)
        assert words in answer["error"], answer
    assert not list(jp_root_dir.rglob("*.ipynb"))


async def test_a_shared_query_is_in_the_teammates_history_only(api: Any, archive_url: str) -> None:
    """alice shares a search with her team through her server; carol (in it) sees it, bob (not) does not."""
    import requests

    await api(
        "surveyhub", "search", params={"release": "DEMO", "version": "v1", "class": "QSO", "z_min": "1"}
    )
    status, body = await api("surveyhub", "history")
    record = next(r for r in body["history"] if r["kind"] == "search" and '"z"' in r["query"])
    status, refused = await api(
        "surveyhub", "history", record["id"], "share", method="POST", params={"team": "astro"}
    )
    assert status == 403
    assert "astro" in refused["error"]
    status, refused = await api(
        "surveyhub", "history", record["id"], "share", method="POST", params={"team": "lamost-wg"}
    )
    assert status == 403  # her group, but not a team
    assert "not a team" in refused["error"]
    status, shared = await api(
        "surveyhub", "history", record["id"], "share", method="POST", params={"team": "gaia-team"}
    )
    assert status == 200, shared
    assert shared["shared_with"] == ["gaia-team"]

    def history_of(token: str) -> list[dict]:
        answer = requests.get(
            archive_url + "api/history", headers={"Authorization": f"token {token}"}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["history"]

    assert record["id"] in {r["id"] for r in history_of(CAROL)}
    assert record["id"] not in {r["id"] for r in history_of(BOB)}
