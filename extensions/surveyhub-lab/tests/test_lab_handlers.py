"""The server extension's routes in a real Jupyter Server, against a real archive service and release store.

Each test runs a Jupyter Server with the extension (pytest-jupyter), configured as the hub configures a user's
server, talking to ``surveyhub archive`` with alice's or bob's development token.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from lab_support import TEAM, Spectra, ended, wait_for
from tornado.httpclient import HTTPClientError

#: One worker builds the lab store and runs these (``make test`` runs with ``--dist loadgroup``).
pytestmark = pytest.mark.xdist_group("lab")


async def start_import(api: Any, version: str, obsids: list[int], folder: str) -> tuple[int, Any]:
    """``POST surveyhub/imports`` of DEMO ``version``'s ``obsids`` into ``folder`` of the user's space."""
    body = {"release": "DEMO", "version": version, "obsids": obsids, "destination": {"folder": folder}}
    return await api("surveyhub", "imports", method="POST", body=body)


ROUTES = [
    ("GET", ("surveyhub", "releases")),
    ("GET", ("surveyhub", "search")),
    ("GET", ("surveyhub", "spectra", "DEMO", "v1", "101019", "fits")),
    ("GET", ("surveyhub", "spectra", "DEMO", "v1", "101019", "pixels")),
    ("GET", ("surveyhub", "history")),
    ("GET", ("surveyhub", "info")),
    ("GET", ("surveyhub", "destinations")),
    ("GET", ("surveyhub", "imports")),
    ("POST", ("surveyhub", "imports")),
    ("GET", ("surveyhub", "imports", "0" * 32)),
    ("DELETE", ("surveyhub", "imports", "0" * 32)),
    ("POST", ("surveyhub", "imports", "0" * 32, "resume")),
    ("GET", ("surveyhub", "download")),
    ("POST", ("surveyhub", "notebooks")),
    ("POST", ("surveyhub", "history", "0" * 32, "share")),
    ("GET", ("surveyhub", "resolve")),
    ("GET", ("surveyhub", "adql", "examples")),
    ("POST", ("surveyhub", "adql")),
    ("POST", ("surveyhub", "upload")),
]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def user_dir(cloud: Path, user: str = "alice") -> Path:
    return cloud / "users" / user


async def test_every_route_refuses_unauthenticated_requests(jp_fetch: Any, cloud: Path) -> None:
    for method, parts in ROUTES:
        for headers in ({"Authorization": "token not-the-server-token"}, {"Authorization": ""}):
            body = b"{}" if method == "POST" else None
            with pytest.raises(HTTPClientError) as refused:
                await jp_fetch(*parts, method=method, headers=headers, body=body)
            assert refused.value.code in (401, 403), (method, parts, refused.value.code)
    # and an authenticated request to the same kind of route does get through
    response = await jp_fetch("surveyhub", "destinations")
    assert response.code == 200
    assert not any(user_dir(cloud).glob("*")), "a refused request must not have written anything"


@pytest.mark.parametrize(
    ("lab_user", "expected"),
    [("alice", ["DEMO/v0", "DEMO/v1", "DEMO/v2"]), ("bob", ["DEMO/v1", "DEMO/v2"])],
)
async def test_releases_are_the_users_own(api: Any, lab_user: str, expected: list[str]) -> None:
    status, body = await api("surveyhub", "releases")
    assert status == 200
    assert body["user"] == lab_user
    assert [f"{r['release']}/{r['version']}" for r in body["releases"]] == expected
    assert {"lrs", "mrs"} <= set(body["releases"][0]["catalogs"])


@pytest.mark.parametrize("lab_user", ["bob"])
async def test_search_spectra_and_history_are_proxied_with_the_users_token(
    api: Any, jp_fetch: Any, spectra: Spectra, lab_user: str
) -> None:
    obsids = spectra.with_files[("v1", "lrs")][:3]
    params = {
        "release": "DEMO",
        "version": "v1",
        "obsid": ",".join(map(str, obsids)),
        "columns": "obsid,class",
    }
    status, body = await api("surveyhub", "search", params=params)
    assert status == 200
    assert [c["name"] for c in body["columns"]] == ["obsid", "class"]
    assert sorted(row[0] for row in body["rows"]) == obsids

    # bob may not read v0: the archive's own 404 comes through, as the archive words it
    status, body = await api("surveyhub", "search", params=params | {"version": "v0"})
    assert status == 404
    assert "DEMO/v0" in body["error"]
    status, body = await api("surveyhub", "search", params={"release": "../x", "version": "v1"})
    assert (status, body["code"]) == (400, "request_invalid")

    fits = await jp_fetch("surveyhub", "spectra", "DEMO", "v1", str(obsids[0]), "fits")
    assert fits.body == spectra.source("v1", obsids[0]).read_bytes()
    assert fits.headers["Content-Type"] == "application/fits"
    assert spectra.source("v1", obsids[0]).name in fits.headers["Content-Disposition"]
    png = await jp_fetch("surveyhub", "spectra", "DEMO", "v1", str(obsids[0]), "thumb")
    assert png.headers["Content-Type"] == "image/png"
    assert png.body.startswith(b"\x89PNG")
    status, info = await api("surveyhub", "spectra", "DEMO", "v1", str(obsids[0]), "info")
    assert status == 200
    assert info["obsid"] == obsids[0]

    status, body = await api("surveyhub", "history")
    assert status == 200
    assert any(record["kind"] == "search" and record["owner"] == "bob" for record in body["history"])


@pytest.mark.parametrize("lab_user", ["bob"])
async def test_pixels_are_the_fits_arrays_as_json_with_the_line_list(
    api: Any, spectra: Spectra, lab_user: str
) -> None:
    from surveyhub.apps.lines import ABSORPTION, EMISSION
    from surveyhub.releases.spectrum import read_spectrum

    obsid = spectra.with_files[("v1", "lrs")][0]
    status, body = await api("surveyhub", "spectra", "DEMO", "v1", str(obsid), "pixels")
    assert status == 200, body
    spec = read_spectrum(spectra.source("v1", obsid))
    assert (body["obsid"], body["kind"], body["npix"]) == (obsid, "LRS", spec.npix)
    assert np.allclose(body["wavelength"], spec.wavelength, rtol=0, atol=1e-4)
    flux = np.array([np.nan if v is None else v for v in body["flux"]])
    assert np.allclose(flux, spec.flux, rtol=1e-6, equal_nan=True)
    assert np.allclose(body["ivar"], spec.ivar, rtol=1e-6)
    assert body["andmask"] == spec.andmask.tolist()
    assert body["ormask"] == spec.ormask.tolist()
    assert any(body["andmask"]) or any(body["ormask"]), "the mock's spectra have masked pixels"
    standard = {(line.name, line.rest) for line in (*EMISSION, *ABSORPTION)}
    assert {(line["name"], line["rest"]) for line in body["lines"]} == standard
    assert len(body["lines"]) == len(standard)
    assert next(line for line in body["lines"] if line["rest"] == 6564.61)["kind"] == "both"

    # bob may not read v0: the archive's own 404 comes through; a spectrum without a file is the archive's 404
    status, body = await api("surveyhub", "spectra", "DEMO", "v0", str(obsid), "pixels")
    assert status == 404, body
    assert "DEMO/v0" in body["error"]
    status, body = await api(
        "surveyhub", "spectra", "DEMO", "v1", str(spectra.without_files["v1"][0]), "pixels"
    )
    assert status == 404, body


async def test_destinations_are_the_users_space_and_teams(api: Any, cloud: Path) -> None:
    status, body = await api("surveyhub", "destinations")
    assert status == 200
    assert body["destinations"] == [
        {"space": "user", "kind": "user", "label": "Your space", "url": user_dir(cloud).as_uri() + "/"},
        {
            "space": f"team:{TEAM}",
            "kind": "team",
            "label": f"Team {TEAM}",
            "url": (cloud / "teams" / TEAM).as_uri() + "/",
        },
    ]
    status, info = await api("surveyhub", "info")
    assert status == 200
    assert info["configured"] is True
    assert info["tap_url"].endswith("/tap")
    assert "archive_token" not in json.dumps(info)


async def test_import_of_20_spectra_gives_verified_files_manifest_and_tables(
    api: Any, cloud: Path, spectra: Spectra, jp_root_dir: Path
) -> None:
    # the space linked at ~/cloud, as the hub links it: the panel's folder link opens it there
    user_dir(cloud).mkdir(parents=True, exist_ok=True)
    (jp_root_dir / "cloud").symlink_to(user_dir(cloud), target_is_directory=True)
    lrs = spectra.with_files[("v1", "lrs")][:18]
    mrs = spectra.with_files[("v1", "mrs")][:2]
    query = {"release": "DEMO", "version": "v1", "class": "STAR", "limit": 20}
    status, started = await api(
        "surveyhub",
        "imports",
        method="POST",
        body={
            "release": "DEMO",
            "version": "v1",
            "obsids": lrs + mrs,
            "destination": {"space": "user", "folder": "imports/first"},
            "query": query,
        },
    )
    assert status == 202, started
    assert started["folder"] == "imports/first"
    assert started["path"] == "cloud/imports/first"
    assert started["files_total"] == 20
    progress = await wait_for(api, started["id"], ended)
    assert progress["status"] == "completed", progress
    assert progress["files_done"] == progress["files_copied"] == 20
    assert progress["bytes_done"] == progress["bytes_total"] > 0
    assert progress["eta_s"] == 0

    folder = user_dir(cloud) / "imports" / "first"
    files = sorted((folder / "spectra").iterdir())
    assert len(files) == 20
    assert not list(folder.rglob(".*.part"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert (manifest["release"], manifest["version"], manifest["user"]) == ("DEMO", "v1", "alice")
    assert manifest["obsids"] == lrs + mrs
    assert manifest["query"] == query
    assert manifest["created"] <= manifest["completed"]
    assert manifest["published"]
    by_obsid = {entry["obsid"]: entry for entry in manifest["files"]}
    assert sorted(by_obsid) == sorted(lrs + mrs)
    for obsid, entry in by_obsid.items():
        copied = folder / entry["path"]
        source = spectra.source("v1", obsid)
        assert entry["sha256"] == sha256(copied) == sha256(source)
        assert entry["size"] == copied.stat().st_size == source.stat().st_size
        assert copied.name == source.name  # LAMOST's own file names

    tables = {t["catalog"]: t for t in manifest["tables"]}
    assert tables["lrs"]["path"] == "catalog.parquet"
    assert tables["mrs"]["path"] == "catalog-mrs.parquet"
    for catalog, wanted in (("lrs", lrs), ("mrs", mrs)):
        path = folder / tables[catalog]["path"]
        assert tables[catalog]["sha256"] == sha256(path)
        table = pq.read_table(path)
        assert sorted(table["obsid"].to_pylist()) == sorted(wanted)
        assert {"ra", "dec", "designation"} <= set(table.column_names)

    status, listed = await api("surveyhub", "imports")
    assert [i["id"] for i in listed["imports"]] == [started["id"]]
    assert listed["imports"][0]["manifest"] == folder.as_uri() + "/manifest.json"
    assert listed["imports"][0]["path"] == "cloud/imports/first"
    assert json.loads((folder / ".surveyhub-import.json").read_text())["status"] == "completed"


async def test_imports_into_a_team_space(api: Any, cloud: Path, spectra: Spectra) -> None:
    obsids = spectra.with_files[("v2", "lrs")][:3]
    status, started = await api(
        "surveyhub",
        "imports",
        method="POST",
        body={
            "release": "DEMO",
            "version": "v2",
            "obsids": obsids,
            "destination": {"space": f"team:{TEAM}", "folder": "shared/picks"},
        },
    )
    assert status == 202, started
    assert (await wait_for(api, started["id"], ended))["status"] == "completed"
    assert started["path"] is None  # the team's space is not linked into this server's root
    folder = cloud / "teams" / TEAM / "shared" / "picks"
    assert len(list((folder / "spectra").iterdir())) == 3
    assert json.loads((folder / "manifest.json").read_text())["destination"]["space"] == f"team:{TEAM}"


@pytest.mark.parametrize("lab_user", ["bob"])
async def test_an_import_of_a_version_the_user_may_not_read_is_refused(
    api: Any, cloud: Path, spectra: Spectra, lab_user: str
) -> None:
    obsids = spectra.with_files[("v0", "lrs")][:5]
    status, body = await start_import(api, "v0", obsids, "v0")
    assert status == 404
    assert body["code"] == "version_not_readable"
    assert "DEMO/v0" in body["error"]
    assert "DEMO/v1, DEMO/v2" in body["error"]  # and what bob may read instead
    assert not (user_dir(cloud, "bob") / "v0").exists()


async def test_obsids_outside_the_version_or_without_files_are_refused(
    api: Any, cloud: Path, spectra: Spectra
) -> None:
    v0_only = spectra.only_in_v0()[:3]
    status, body = await start_import(api, "v1", v0_only, "x")
    assert (status, body["code"]) == (400, "obsids_not_found")
    assert str(v0_only[0]) in body["error"]
    assert body["obsids"] == v0_only

    no_file = spectra.without_files["v1"][:2]
    status, body = await start_import(api, "v1", no_file, "x")
    assert (status, body["code"]) == (400, "spectra_missing")
    assert str(no_file[0]) in body["error"]

    for bad, field in (
        ({"version": "v1", "obsids": [1], "destination": {"folder": "x"}}, "release"),
        ({"release": "DEMO", "version": "v1", "obsids": [], "destination": {"folder": "x"}}, "obsids"),
        ({"release": "DEMO", "version": "v1", "obsids": ["12a"], "destination": {"folder": "x"}}, "obsids"),
        (
            {"release": "DEMO", "version": "v1", "obsids": [1], "destination": {"folder": "x"}, "query": 3},
            "query",
        ),
    ):
        status, body = await api("surveyhub", "imports", method="POST", body=bad)
        assert (status, body["code"]) == (400, "request_invalid"), body
        assert body["error"].startswith(field), body
    assert not (user_dir(cloud) / "x").exists()


@pytest.mark.parametrize(
    ("destination", "status", "code", "words"),
    [
        ({"space": "user", "folder": "../../other"}, 400, "destination_invalid", "'..' is not allowed"),
        ({"space": "user", "folder": "a/../../bob/x"}, 400, "destination_invalid", "'..' is not allowed"),
        ({"space": "user", "folder": "/srv/cloud/users/bob"}, 400, "destination_invalid", "relative"),
        ({"space": "user", "folder": "file:///tmp/x"}, 400, "destination_invalid", "no URL"),
        ({"space": "user", "folder": ".surveyhub"}, 400, "destination_invalid", "reserved"),
        ({"space": "user:bob", "folder": "x"}, 403, "destination_forbidden", "'user:bob' is not one of your"),
        ({"space": "team:other", "folder": "x"}, 403, "destination_forbidden", "team:astro"),
        ({"space": "file:///tmp/users/bob/", "folder": "x"}, 403, "destination_forbidden", "not one of"),
        ({"folder": ""}, 400, "destination_invalid", "give a folder"),
        ("x", 400, "destination_invalid", "destination"),
    ],
)
async def test_destinations_outside_the_users_spaces_are_refused(
    api: Any, cloud: Path, spectra: Spectra, destination: Any, status: int, code: str, words: str
) -> None:
    (cloud / "users" / "bob").mkdir()
    body = {"release": "DEMO", "version": "v1", "obsids": spectra.with_files[("v1", "lrs")][:2]}
    answer_status, answer = await api(
        "surveyhub", "imports", method="POST", body=body | {"destination": destination}
    )
    assert (answer_status, answer["code"]) == (status, code), answer
    assert words in answer["error"]
    written = [p for p in cloud.rglob("*") if p.is_file()]
    assert written == [], "a refused import must write nothing anywhere"


async def test_an_existing_folder_is_not_imported_into(api: Any, cloud: Path, spectra: Spectra) -> None:
    (user_dir(cloud) / "mine").mkdir(parents=True)
    (user_dir(cloud) / "mine" / "notes.txt").write_text("keep me")
    status, body = await api(
        "surveyhub",
        "imports",
        method="POST",
        body={
            "release": "DEMO",
            "version": "v1",
            "obsids": spectra.with_files[("v1", "lrs")][:1],
            "destination": {"folder": "mine"},
        },
    )
    assert (status, body["code"]) == (409, "destination_exists")
    assert sorted(p.name for p in (user_dir(cloud) / "mine").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("lab_extra", [{"quota_bytes": 1_000_000}])
async def test_an_import_over_quota_is_refused_before_copying(
    api: Any, cloud: Path, spectra: Spectra
) -> None:
    (user_dir(cloud)).mkdir(parents=True)
    (user_dir(cloud) / "old.bin").write_bytes(b"\0" * 200_000)
    obsids = spectra.with_files[("v1", "lrs")][:20]
    status, body = await start_import(api, "v1", obsids, "big")
    assert (status, body["code"]) == (413, "quota_exceeded"), body
    assert body["used_bytes"] == 200_000
    assert body["quota_bytes"] == 1_000_000
    assert body["needed_bytes"] > 1_000_000
    assert "quota of 1.0 MB" in body["error"]
    assert not (user_dir(cloud) / "big").exists()

    status, body = await api(  # a small one fits
        "surveyhub",
        "imports",
        method="POST",
        body={"release": "DEMO", "version": "v1", "obsids": obsids[:2], "destination": {"folder": "small"}},
    )
    assert status == 202, body
    assert (await wait_for(api, body["id"], ended))["status"] == "completed"


#: A rate limit, so an import of 20 spectra (about 2.5 MB) lasts seconds and can be cancelled part-way.
SLOW = {"rate_limit": 600_000}


@pytest.mark.parametrize("lab_extra", [SLOW])
async def test_a_cancelled_import_leaves_only_whole_files_and_resume_copies_only_the_rest(
    api: Any, cloud: Path, spectra: Spectra, lab_app: Any
) -> None:
    obsids = spectra.with_files[("v1", "lrs")][:20]
    status, started = await start_import(api, "v1", obsids, "slow")
    assert status == 202, started
    progress = await wait_for(api, started["id"], lambda p: p["files_done"] >= 4 or ended(p))
    assert progress["status"] == "running"
    assert progress["rate_bytes_per_s"] > 0
    assert progress["eta_s"] > 0

    status, cancelled = await api("surveyhub", "imports", started["id"], method="DELETE")
    assert status == 200
    assert cancelled["status"] == "cancelled"
    folder = user_dir(cloud) / "slow"
    present = {p.name: p for p in (folder / "spectra").iterdir()}
    assert 4 <= len(present) < 20
    assert len(present) == cancelled["files_done"]
    assert not list(folder.rglob("*.part"))
    assert not (folder / "manifest.json").exists()
    sources = {spectra.source("v1", o).name: spectra.source("v1", o) for o in obsids}
    for name, path in present.items():  # every file under a final name is whole and correct
        assert sha256(path) == sha256(sources[name])
    before = {name: (p.stat().st_ino, p.stat().st_mtime_ns) for name, p in present.items()}
    state = json.loads((folder / ".surveyhub-import.json").read_text())
    assert state["status"] == "cancelled"

    lab_app.imports.throttle.rate = 0  # the rest at full speed
    status, resumed = await api("surveyhub", "imports", started["id"], "resume", method="POST")
    assert status == 202, resumed
    progress = await wait_for(api, started["id"], ended)
    assert progress["status"] == "completed", progress
    assert progress["files_found"] == len(present)
    assert progress["files_copied"] == 20 - len(present)  # only the missing files were copied
    after = {p.name: p for p in (folder / "spectra").iterdir()}
    assert len(after) == 20
    assert {name: (after[name].stat().st_ino, after[name].stat().st_mtime_ns) for name in before} == before
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {f["path"].split("/")[-1]: f["sha256"] for f in manifest["files"]} == {
        name: sha256(path) for name, path in sources.items()
    }
    status, body = await api("surveyhub", "imports", started["id"], "resume", method="POST")
    assert (status, body["code"]) == (409, "import_finished")


@pytest.mark.parametrize("lab_extra", [SLOW | {"cloud": "s3"}])
async def test_an_import_into_s3_is_verified_atomic_and_resumable(
    api: Any, spectra: Spectra, lab_config: dict[str, Any], lab_app: Any
) -> None:
    import fsspec

    s3 = fsspec.filesystem("s3", skip_instance_cache=True, **lab_config["cloud_storage_options"])
    obsids = spectra.with_files[("v1", "lrs")][:20]
    status, started = await start_import(api, "v1", obsids, "s3/run")
    assert status == 202, started
    assert started["url"] == lab_config["cloud_url"] + "s3/run/"
    await wait_for(api, started["id"], lambda p: p["files_done"] >= 3 or ended(p))
    status, cancelled = await api("surveyhub", "imports", started["id"], method="DELETE")
    assert cancelled["status"] == "cancelled"

    folder = lab_config["cloud_url"].removeprefix("s3://") + "s3/run"
    sources = {spectra.source("v1", o).name: spectra.source("v1", o) for o in obsids}
    s3.invalidate_cache()
    present = s3.ls(folder + "/spectra", detail=False)
    assert 3 <= len(present) < 20
    for key in present:  # each object is the whole file
        assert hashlib.sha256(s3.cat_file(key)).hexdigest() == sha256(sources[key.rsplit("/", 1)[-1]])
    assert not s3.exists(folder + "/manifest.json")
    assert not [k for k in s3.find(folder) if k.endswith(".part")]

    lab_app.imports.throttle.rate = 0
    status, _ = await api("surveyhub", "imports", started["id"], "resume", method="POST")
    assert status == 202
    progress = await wait_for(api, started["id"], ended)
    assert progress["status"] == "completed", progress
    assert (progress["files_found"], progress["files_copied"]) == (len(present), 20 - len(present))
    s3.invalidate_cache()
    manifest = json.loads(s3.cat_file(folder + "/manifest.json"))
    assert len(manifest["files"]) == 20
    for entry in manifest["files"]:
        data = s3.cat_file(f"{folder}/{entry['path']}")
        assert (
            entry["sha256"]
            == hashlib.sha256(data).hexdigest()
            == sha256(sources[entry["path"].split("/")[-1]])
        )
        assert entry["size"] == len(data)
    table = pq.read_table(io.BytesIO(s3.cat_file(folder + "/catalog.parquet")))
    assert sorted(table["obsid"].to_pylist()) == sorted(obsids)
    # the pointer that lists the import after a restart lives in the user's own prefix
    pointer = lab_config["cloud_url"].removeprefix("s3://") + f".surveyhub/imports/{started['id']}.json"
    assert json.loads(s3.cat_file(pointer))["folder"] == "s3/run"


async def test_unknown_imports_answer_404(api: Any) -> None:
    for method, suffix in (("GET", ()), ("DELETE", ()), ("POST", ("resume",))):
        status, body = await api("surveyhub", "imports", "f" * 32, *suffix, method=method)
        assert (status, body["code"]) == (404, "import_not_found")


def test_the_wheel_enables_the_extension_for_every_server() -> None:
    """The shared-data config is what makes every spawned server load the extension."""
    import surveyhub_lab

    root = Path(__file__).resolve().parents[1]
    config = json.loads((root / "jupyter-config" / "server-config" / "surveyhub_lab.json").read_text())
    assert config == {"ServerApp": {"jpserver_extensions": {"surveyhub_lab": True}}}
    assert surveyhub_lab._jupyter_server_extension_points()[0]["module"] == "surveyhub_lab"
    installed = Path(os.sys.prefix) / "etc" / "jupyter" / "jupyter_server_config.d" / "surveyhub_lab.json"
    assert json.loads(installed.read_text()) == config
