"""Fixtures of the server extension's tests: a real release store, a real archive service, real S3 (moto).

pytest-jupyter's server fixtures (``jp_serverapp``, ``jp_fetch``, ...) are imported here rather than named in
``pytest_plugins``: a conftest's fixtures and hooks apply to its own folder only, so the plugin's autouse
event-loop and server-cleanup fixtures stay out of the rest of the project's suite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lab_support import TEAM, Spectra
from pytest_jupyter.jupyter_server import *  # noqa: F403 - the plugin's fixtures and hooks, for this folder

from tests.support.archive import ALICE, BOB, archive_server
from tests.support.s3 import moto_server, s3_options

#: A small mock release: 600 LRS rows in v0 (480 in v1, 375 in v2), FITS files for the first 60 LRS and
#: 30 MRS rows. Built once per test process (about 25 s).
LAB_ROWS = 600
LAB_FITS = 60
TOKENS = {"alice": ALICE, "bob": BOB}


@pytest.fixture(scope="session")
def lab_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The release store root, built by the real mock generator."""
    from surveyhub.releases.mock.release import build_mock_release

    root = tmp_path_factory.mktemp("lab-store") / "store"
    build_mock_release(str(root), "DEMO", LAB_ROWS, fits_files=LAB_FITS, seed=11, log=lambda _: None)
    return str(root)


@pytest.fixture(scope="session")
def archive_url(lab_store: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``surveyhub archive`` over the store, with development tokens for alice and bob."""
    with archive_server(lab_store, tmp_path_factory.mktemp("lab-archive"), allow_anonymous=False) as url:
        yield url


@pytest.fixture(scope="session")
def lab_s3() -> Iterator[str]:
    """A moto S3 server with the ``cloud`` bucket."""
    import fsspec

    with moto_server() as endpoint:
        fsspec.filesystem("s3", skip_instance_cache=True, **s3_options(endpoint)).mkdir("cloud")
        yield endpoint


@pytest.fixture(scope="session")
def spectra(lab_store: str) -> Spectra:
    """What the store holds, by version and catalog."""
    return Spectra(lab_store)


@pytest.fixture
def lab_user() -> str:
    """Whose server it is (tests parametrize it)."""
    return "alice"


@pytest.fixture
def cloud(tmp_path: Path) -> Path:
    """The cloud root on local disk: ``users/<name>/`` and ``teams/<team>/`` under it."""
    root = tmp_path / "cloud"
    (root / "users").mkdir(parents=True)
    (root / "teams" / TEAM).mkdir(parents=True)
    return root


@pytest.fixture
def lab_extra() -> dict[str, Any]:
    """More traitlets for one test (tests parametrize it: a quota, a rate limit, ``"cloud": "s3"``)."""
    return {}


@pytest.fixture
def lab_config(
    request: pytest.FixtureRequest,
    lab_user: str,
    lab_extra: dict[str, Any],
    cloud: Path,
    archive_url: str,
    lab_store: str,
) -> dict[str, Any]:
    """The extension's traitlets as the hub's environment would set them: a ``file://`` cloud, or S3.

    On S3 (``lab_extra={"cloud": "s3"}``) the spaces are prefixes of one bucket on moto, as in production:
    ``users/<name>/`` and ``teams/<team>/`` under a prefix of the test's own.
    """
    extra = dict(lab_extra)
    config: dict[str, Any] = {
        "archive_url": archive_url,
        "archive_token": TOKENS[lab_user],
        "tap_url": archive_url + "tap",
        "cloud_url": (cloud / "users" / lab_user).as_uri() + "/",
        "teams": {TEAM: (cloud / "teams" / TEAM).as_uri() + "/"},
        "store_url": lab_store,
        "releases_dir": str(cloud / "releases"),
    }
    if extra.pop("cloud", "file") == "s3":
        endpoint = request.getfixturevalue("lab_s3")
        prefix = f"s3://cloud/{request.node.name.replace('[', '-').strip(']')}"
        config["cloud_url"] = f"{prefix}/users/{lab_user}/"
        config["teams"] = {TEAM: f"{prefix}/teams/{TEAM}/"}
        config["cloud_storage_options"] = s3_options(endpoint)
    return config | extra


@pytest.fixture
def jp_server_config(lab_config: dict[str, Any]) -> dict[str, Any]:
    """pytest-jupyter's server config: the extension enabled and configured."""
    from traitlets.config import Config

    return Config({"ServerApp": {"jpserver_extensions": {"surveyhub_lab": True}}, "SurveyhubLab": lab_config})


@pytest.fixture
def lab_app(jp_serverapp: Any) -> Any:
    """The running extension app (its ImportManager), for tests that look inside."""
    return jp_serverapp.extension_manager.extension_points["surveyhub_lab"].app


@pytest.fixture
def api(jp_fetch: Callable[..., Any]) -> Callable[..., Any]:
    """Call a route and get (status, parsed JSON) back, errors included (no exception for 4xx)."""
    from tornado.httpclient import HTTPClientError

    async def call(*parts: str, method: str = "GET", body: Any = None, **kwargs: Any) -> tuple[int, Any]:
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method == "POST":
            kwargs["body"] = b""
        try:
            response = await jp_fetch(*parts, method=method, **kwargs)
        except HTTPClientError as exc:
            body = exc.response.body if exc.response is not None else b""
            return exc.code, json.loads(body or b"null")
        return response.code, json.loads(response.body or b"null")

    return call
