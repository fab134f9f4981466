"""Session fixtures: one small mock release (built once per test process) and a real S3 server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from surveyhub.releases.registry import ReleaseStore
from tests.support.s3 import moto_server

#: The small mock release most tests read: big enough for several partitions' worth of plates.
MOCK_ROWS = 6000
MOCK_FITS = 400


@pytest.fixture(scope="session")
def mock_store(tmp_path_factory: pytest.TempPathFactory) -> ReleaseStore:
    """A release store with DEMO v0, v1, v2 from ``surveyhub release mock`` (the real generator)."""
    from surveyhub.releases.mock.release import build_mock_release

    root = tmp_path_factory.mktemp("store")
    build_mock_release(str(root), "DEMO", MOCK_ROWS, fits_files=MOCK_FITS, seed=7, log=lambda _: None)
    return ReleaseStore(str(root))


@pytest.fixture(scope="session")
def platform_store() -> ReleaseStore:
    """A small mock release in a folder other accounts can enter (users' servers read it as themselves).

    pytest's own temporary folders are private to root, so the hub's tests keep theirs under /tmp.
    """
    from surveyhub.releases.mock.release import build_mock_release
    from tests.support.platform import reachable_dir

    root = reachable_dir("surveyhub-store-") / "store"
    build_mock_release(str(root), "DEMO", 600, fits_files=60, seed=11, log=lambda _: None)
    return ReleaseStore(str(root))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The endpoint of a moto S3 server running for the whole session."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture
def tmp_store(tmp_path: Path) -> ReleaseStore:
    """An empty local release store."""
    return ReleaseStore(str(tmp_path / "store"))
