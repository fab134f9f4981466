"""Publishing is atomic, refuses to overwrite, and works on a real S3 API server."""

from __future__ import annotations

import pytest
import s3fs

from surveyhub.releases.manifest import Policy, ReleaseManifest
from surveyhub.releases.publish import Publication, PublishError
from surveyhub.releases.registry import ReleaseStore, VersionNotFound, check_name
from tests.support.s3 import s3_options


def _manifest(version: str = "v1", *, public: bool = False) -> ReleaseManifest:
    return ReleaseManifest(
        release="DR1",
        version=version,
        title="t",
        description="d",
        policy=Policy(public=public, groups=("lamost-wg",)),
        acknowledgement="a",
    )


def test_interrupted_publication_leaves_no_visible_version(tmp_store: ReleaseStore) -> None:
    with pytest.raises(RuntimeError, match="disk died"), Publication(tmp_store, "DR1", "v1") as pub:
        (pub.staging / "catalogs").mkdir()
        (pub.staging / "catalogs" / "half.parquet").write_bytes(b"PAR1")
        raise RuntimeError("disk died")
    assert tmp_store.versions({"lamost-wg"}) == []
    assert list(tmp_store.fs.ls(tmp_store.path("DR1"))) == []  # staging removed too
    with pytest.raises(VersionNotFound):
        tmp_store.version("DR1", "v1", {"lamost-wg"})


def test_staging_is_invisible_until_commit(tmp_store: ReleaseStore) -> None:
    with Publication(tmp_store, "DR1", "v1") as pub:
        (pub.staging / "release.toml").write_text(_manifest().to_toml())  # even with a manifest inside
        assert tmp_store.versions({"lamost-wg"}) == []
        pub.commit(_manifest())
    assert [v.key for v in tmp_store.versions({"lamost-wg"})] == ["DR1/v1"]


def test_published_versions_are_kept_unless_replaced(tmp_store: ReleaseStore) -> None:
    with Publication(tmp_store, "DR1", "v1") as pub:
        (pub.staging / "old.txt").write_text("old")
        pub.commit(_manifest())
    with pytest.raises(PublishError, match="already published"):
        Publication(tmp_store, "DR1", "v1")
    with Publication(tmp_store, "DR1", "v1", replace=True) as pub:
        (pub.staging / "new.txt").write_text("new")
        pub.commit(_manifest(public=True))
    version = tmp_store.version("DR1", "v1", set())
    assert version.manifest.policy.public
    assert tmp_store.fs.exists(version.path("new.txt"))
    assert not tmp_store.fs.exists(version.path("old.txt"))


def test_manifest_must_match_the_publication(tmp_store: ReleaseStore) -> None:
    with Publication(tmp_store, "DR1", "v1") as pub, pytest.raises(PublishError, match="manifest is for"):
        pub.commit(_manifest("v2"))


@pytest.mark.parametrize("name", ["../etc", ".hidden", "a/b", "", "v1/../../x"])
def test_names_that_could_escape_the_store_are_refused(name: str, tmp_store: ReleaseStore) -> None:
    with pytest.raises(ValueError, match="invalid"):
        check_name("version", name)
    with pytest.raises(VersionNotFound):
        tmp_store.version("DR1", name, {"lamost-wg"})


def test_publish_to_s3_shows_the_version_only_when_complete(s3_endpoint: str) -> None:
    options = s3_options(s3_endpoint)
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("releases-publish")
    store = ReleaseStore("s3://releases-publish/store", storage_options=options)
    with pytest.raises(RuntimeError), Publication(store, "DR1", "v1") as pub:
        (pub.staging / "data.bin").write_bytes(b"x" * 10)
        raise RuntimeError("interrupted")
    assert store.versions({"lamost-wg"}) == []
    with Publication(store, "DR1", "v1") as pub:
        (pub.staging / "fits" / "20111024").mkdir(parents=True)
        (pub.staging / "fits" / "20111024" / "a.fits.gz").write_bytes(b"abc")
        url = pub.commit(_manifest())
    assert url == "s3://releases-publish/store/DR1/v1"
    fresh = ReleaseStore("s3://releases-publish/store", storage_options=options)
    [version] = fresh.versions({"lamost-wg"})
    assert version.key == "DR1/v1"
    assert version.manifest.title == "t"
    assert fresh.fs.cat(version.path("fits/20111024/a.fits.gz")) == b"abc"
    assert fresh.versions({"someone-else"}) == []
