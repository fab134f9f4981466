"""The archive service over HTTP, a real process, as the panel, scripts and VO clients call it."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse_single_table
from astropy.time import Time

from surveyhub.releases.registry import ReleaseStore
from tests.support.archive import ALICE, BOB, archive_server

pytestmark = pytest.mark.xdist_group("mock")


@pytest.fixture(scope="module")
def url(mock_store: ReleaseStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with archive_server(mock_store.url, tmp_path_factory.mktemp("archive")) as base:
        yield base


@pytest.fixture(scope="module")
def lrs(mock_store: ReleaseStore) -> pd.DataFrame:
    return (
        mock_store.version("DEMO", "v0", {"lamost-wg"}).open_catalog("lrs").compute().reset_index(drop=True)
    )


def _get(url: str, token: str | None = None, **params: object) -> requests.Response:
    headers = {"Authorization": f"token {token}"} if token else {}
    return requests.get(url, params=params, headers=headers, timeout=60)


def test_each_user_sees_only_their_versions(url: str) -> None:
    def keys(token: str | None) -> list[str]:
        body = _get(url + "api/releases", token).json()
        return [f"{r['release']}/{r['version']}" for r in body["releases"]]

    assert keys(ALICE) == ["DEMO/v0", "DEMO/v1", "DEMO/v2"]
    assert keys(BOB) == ["DEMO/v1", "DEMO/v2"]
    assert keys(None) == ["DEMO/v2"]
    assert _get(url + "api/releases", "wrong-token").status_code == 401


def test_unreadable_version_is_indistinguishable_from_a_missing_one(url: str, lrs: pd.DataFrame) -> None:
    obsid = int(lrs["obsid"].min())
    for path in ("api/DEMO/{v}/search", f"api/DEMO/{{v}}/spectra/{obsid}/fits", "scs/DEMO/{v}/lrs"):
        hidden = _get(url + path.format(v="v0"), BOB, RA=10, DEC=10, SR=0.1)
        absent = _get(url + path.format(v="v9"), BOB, RA=10, DEC=10, SR=0.1)
        assert hidden.status_code == absent.status_code == 404
        assert hidden.text.replace("v0", "vX") == absent.text.replace("v9", "vX")
    assert _get(url + f"DEMO/v0/lrs/spectrum/fits?obsid={obsid}", BOB).status_code == 404
    assert _get(url + f"DEMO/v0/lrs/spectrum/fits?token={ALICE}&obsid={obsid}").status_code == 200


def test_json_search_pages_and_counts(url: str, lrs: pd.DataFrame) -> None:
    body = _get(url + "api/DEMO/v0/search", ALICE, **{"class": "GALAXY", "sort": "z", "limit": 5}).json()
    galaxies = lrs[lrs["class"] == "GALAXY"].sort_values("z")
    assert body["total"] == len(galaxies)
    names = [c["name"] for c in body["columns"]]
    assert [row[names.index("obsid")] for row in body["rows"]] == list(galaxies["obsid"].iloc[:5])
    assert next(c for c in body["columns"] if c["name"] == "z")["ucd"] == "src.redshift"
    bad = _get(url + "api/DEMO/v0/search", ALICE, radius="1deg")
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("radius:")


def test_search_downloads_in_every_format(url: str) -> None:
    params = {"class": "QSO", "limit": 1000}
    want = _get(url + "api/DEMO/v1/search", BOB, **params).json()["total"]
    csv = pd.read_csv(io.StringIO(_get(url + "api/DEMO/v1/search", BOB, format="csv", **params).text))
    assert len(csv) == want
    vot = parse_single_table(
        io.BytesIO(_get(url + "api/DEMO/v1/search", BOB, format="votable", **params).content)
    )
    assert len(vot.array) == want
    assert vot.get_field_by_id_or_name("ra").unit == "deg"
    parquet = pd.read_parquet(
        io.BytesIO(_get(url + "api/DEMO/v1/search", BOB, format="parquet", **params).content)
    )
    assert len(parquet) == want


def test_spectrum_products(url: str, lrs: pd.DataFrame) -> None:
    obsid = int(lrs["obsid"].min())
    fits = _get(url + f"api/DEMO/v0/spectra/{obsid}/fits", ALICE)
    assert fits.status_code == 200
    assert fits.content[:2] == b"\x1f\x8b"
    assert 'filename="spec-' in fits.headers["Content-Disposition"]
    png = _get(url + f"api/DEMO/v0/spectra/{obsid}/png", ALICE)
    assert png.headers["Content-Type"] == "image/png"
    assert png.content[:4] == b"\x89PNG"
    thumb = _get(url + f"api/DEMO/v0/spectra/{obsid}/thumb", ALICE)
    assert len(thumb.content) < len(png.content)
    csv = pd.read_csv(io.StringIO(_get(url + f"DEMO/v0/lrs/spectrum/fits2csv?obsid={obsid}", ALICE).text))
    assert list(csv.columns) == ["Wavelength", "Flux", "FluxSmooth7", "FluxSmooth15"]
    assert len(csv) == 3909
    info = _get(url + f"DEMO/v0/lrs/spectrum/info?obsid={obsid}", ALICE).json()
    assert info["obsid"] == obsid
    assert info["designation"] == lrs.set_index("obsid").loc[obsid, "designation"]
    assert _get(url + "api/DEMO/v0/spectra/1/fits", ALICE).status_code == 404
    assert _get(url + "DEMO/v0/lrs/spectrum/fits?obsid=abc", ALICE).status_code == 400


def test_many_spectra_as_one_tar(url: str, lrs: pd.DataFrame) -> None:
    obsids = sorted(lrs["obsid"])[:15]
    response = requests.post(
        url + "api/DEMO/v0/spectra.tar",
        data=" ".join(map(str, obsids)),
        headers={"Authorization": f"token {ALICE}"},
        timeout=60,
    )
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r|*") as tar:
        names = [m.name for m in tar]
    assert len([n for n in names if n.startswith("spec-")]) == 15


def test_crossmatch_upload_finds_the_nearest(url: str, lrs: pd.DataFrame) -> None:
    picked = lrs.sample(10, random_state=2)
    body = "ra,dec\n" + "\n".join(
        f"{r + 0.3 / 3600},{d}" for r, d in zip(picked["ra"], picked["dec"], strict=True)
    )
    body += "\n0.0,-89.0\nnot,a position\n"
    response = requests.post(
        url + "api/DEMO/v0/crossmatch?radius=2arcsec",
        data=body,
        headers={"Authorization": f"token {ALICE}"},
        timeout=60,
    ).json()
    matches = response["matches"]
    assert [m["match"]["obsid"] for m in matches[:10]] == list(picked["obsid"])
    assert all(m["match"]["distance_arcsec"] < 0.5 for m in matches[:10])
    assert matches[10]["match"] is None
    assert "error" in matches[11]


def test_simple_cone_search_with_pyvo(url: str, lrs: pd.DataFrame) -> None:
    import pyvo

    row = lrs.iloc[7]
    service = pyvo.dal.SCSService(url + f"scs/DEMO/v0/lrs?token={ALICE}")
    result = service.search(pos=(row["ra"], row["dec"]), radius=0.1)
    sep = SkyCoord(lrs["ra"].to_numpy() * u.deg, lrs["dec"].to_numpy() * u.deg).separation(
        SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
    )
    assert set(result.to_table()["obsid"]) == set(lrs["obsid"][sep.deg <= 0.1])
    error = _get(url + "scs/DEMO/v0/lrs", ALICE, RA=10, DEC=95, SR=0.1)
    assert b'name="QUERY_STATUS" value="ERROR"' in error.content


def test_lamost_conesearch_route_keeps_scripts_working(url: str, lrs: pd.DataFrame) -> None:
    row = lrs.iloc[3]
    response = _get(
        url + "DEMO/v2/lrs/voservice/conesearch",
        None,
        ra=row["ra"],
        dec=row["dec"],
        sr=0.05,
        **{"output.fmt": "csv"},
    )
    assert response.status_code == 200
    table = pd.read_csv(io.StringIO(response.text))
    assert {"obsid", "ra", "dec"} <= set(table.columns)


def test_service_is_read_only(url: str, mock_store: ReleaseStore) -> None:
    assert requests.put(url + "api/DEMO/v0/search", data=b"x", timeout=10).status_code in (401, 405)
    assert Path(mock_store.path("DEMO", "v0", "release.toml")).exists()


def test_simple_spectral_access_with_pyvo(url: str, lrs: pd.DataFrame) -> None:
    import pyvo

    session = requests.Session()
    session.headers["Authorization"] = f"token {ALICE}"
    row = lrs.sort_values("obsid").iloc[11]  # the mock has files for its first rows by obsid
    service = pyvo.dal.SSAService(url + "ssa/DEMO/v0", session=session)
    results = service.search(pos=(row["ra"], row["dec"]), diameter=0.2)
    sep = SkyCoord(lrs["ra"].to_numpy() * u.deg, lrs["dec"].to_numpy() * u.deg).separation(
        SkyCoord(row["ra"] * u.deg, row["dec"] * u.deg)
    )
    assert {r["obsid"] for r in results} <= set(lrs["obsid"][sep.deg <= 0.1])
    assert results[0]["obsid"] == row["obsid"]  # nearest first
    for record in results:  # every row links to a file that is there (rows without files are left out)
        fits = session.get(record.getdataurl(), timeout=60)
        assert fits.status_code == 200
        assert fits.content[:2] == b"\x1f\x8b"
    mjd = int(row["mjd"])
    later = Time([mjd + 1000, mjd + 2000], format="mjd")
    none = service.search(pos=(row["ra"], row["dec"]), diameter=0.2, time=later)
    assert (
        len(
            service.search(
                pos=(row["ra"], row["dec"]), diameter=0.2, time=Time([mjd - 1, mjd + 1], format="mjd")
            )
        )
        > 0
    )
    assert len(none) == 0
    elsewhere = service.search(pos=(row["ra"], row["dec"]), diameter=0.2, band=(1e-5, 2e-5))
    assert len(elsewhere) == 0
    bad = session.get(url + "ssa/DEMO/v0", params={"POS": "here"}, timeout=60)
    assert bad.status_code == 400
    assert b'value="ERROR"' in bad.content


def test_lamost_ssap_route_and_votlint(url: str, lrs: pd.DataFrame, tmp_path: Path) -> None:
    import shutil
    import subprocess

    row = lrs.sort_values("obsid").iloc[0]
    response = _get(url + "DEMO/v2/lrs/voservice/ssap", None, pos=f"{row['ra']},{row['dec']}", size=0.3)
    assert response.status_code == 200
    path = tmp_path / "ssa.vot"
    path.write_bytes(response.content)
    if shutil.which("stilts") is None:
        pytest.fail("STILTS is not installed: `make test` installs it (apt-get install stilts)")
    lint = subprocess.run(
        ["stilts", "votlint", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert "ERROR" not in lint.stdout + lint.stderr
