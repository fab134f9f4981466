"""The folders a user's server sees, and the permissions that make them private.

On the embedded default everything is on this machine's disk, so isolation is Unix permissions, checked
by the kernel on every open (not by our code):

- the release store is owned by root; a restricted version's folder is ``root:shr-<release>-<version>``
  mode 0750, a public one 0755, and hidden staging folders 0700, so an account can read exactly the
  versions whose Unix group it is in, and can write none;
- ``~/releases/<release>/<version>`` are links to the granted versions only (root-owned folders, so the
  listing shows what the user may read; the link is a convenience, the permission is the lock);
- a user's cloud folder is theirs, mode 0700, linked at ``~/cloud``;
- a team's folder is ``root:sht-<team>`` mode 2770 (set-group-id, so files made inside stay the team's),
  linked at ``~/teams/<team>``; servers run with umask 002 so teammates can edit each other's files;
- ``~/apps`` links to the Voila apps' notebooks (``surveyhub.apps.registry.apps_dir``, root's files), so
  Voila renders them at ``/user/<name>/voila/render/apps/...`` and nobody can change them;
- ``~/tutorials`` holds the user's own copies of the tutorial notebooks (``surveyhub.hub.tutorials``).

Without root there is one trusted user and none of this can be enforced: the same folders are made, and
the hub says loudly at start that it is a single-user sandbox.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from surveyhub.apps.registry import APPS_LINK, apps_dir
from surveyhub.hub.accounts import (
    TEAM_GROUP_PREFIX,
    VERSION_GROUP_PREFIX,
    Account,
    ensure_group,
    group_name,
)
from surveyhub.hub.settings import Settings
from surveyhub.hub.tutorials import place_tutorials
from surveyhub.releases.registry import ReleaseStore, ReleaseVersion


class WorkspaceError(RuntimeError):
    """A folder the platform needs cannot be made or reached; names the folder and the reason."""


def local_path(url: str) -> Path | None:
    """The local folder of a ``file://`` URL or plain path; None for object storage."""
    if "://" not in url:
        return Path(url)
    parts = urlsplit(url)
    return Path(parts.path) if parts.scheme == "file" else None


def version_group(version: ReleaseVersion) -> str:
    """The Unix group whose members may read a restricted version."""
    return group_name(VERSION_GROUP_PREFIX, version.key)


def team_group(team: str) -> str:
    """The Unix group of a team's folder."""
    return group_name(TEAM_GROUP_PREFIX, team)


def check_traversable(path: Path) -> None:
    """Refuse a folder that other accounts cannot reach (a parent without the x bit for others)."""
    for parent in [path, *path.parents]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            raise WorkspaceError(
                f"{parent} is not reachable by other accounts (mode {oct(os.stat(parent).st_mode & 0o777)}): "
                f"users' servers need to reach {path}; chmod o+x {parent} or put the platform elsewhere"
            )


def secure_store(store: ReleaseStore) -> list[ReleaseVersion]:
    """Give every version of a local store the permissions its policy asks for; returns the versions.

    Run at hub start and before each spawn, so a version published since is gated before anyone sees it.
    Only the folders' own modes change: what is inside stays as the publisher wrote it (root-owned,
    world-readable files under a gate).
    """
    root = local_path(store.url)
    if root is None or not root.exists():
        return store.all_versions()
    os.chown(root, 0, 0)
    root.chmod(0o755)
    versions = store.all_versions()
    for release_dir in root.iterdir():
        if not release_dir.is_dir():
            continue
        if release_dir.name.startswith("."):
            release_dir.chmod(0o700)
            continue
        release_dir.chmod(0o755)
        for child in release_dir.iterdir():
            if child.is_dir() and child.name.startswith("."):
                child.chmod(0o700)  # staging and replaced versions: nobody's business
    for version in versions:
        folder = Path(version.path())
        if version.manifest.policy.public:
            os.chown(folder, 0, 0)
            folder.chmod(0o755)
        else:
            os.chown(folder, 0, ensure_group(version_group(version)))
            folder.chmod(0o750)
    return versions


def prepare_state(settings: Settings, *, isolate: bool) -> None:
    """The platform's own folders: reachable where users need them, private where they must be."""
    home = Path(settings.home)
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o755)
    for private in (home / "hub", Path(settings.archive.cache_dir)):
        private.mkdir(parents=True, exist_ok=True)
        private.chmod(0o700)
    for url in (settings.cloud.user_url, settings.cloud.team_url):
        folder = local_path(url.split("{", 1)[0])
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o755 if isolate else 0o700)
    if isolate:  # users' accounts run the platform's Python and read its sources and state
        import surveyhub

        check_traversable(home)
        check_traversable(Path(settings.users.home_root))
        check_traversable(Path(settings.users.python or sys.executable).parent)
        check_traversable(Path(surveyhub.__file__).parent)


@dataclass(frozen=True)
class Workspace:
    """A prepared home: where things are, for the server's environment."""

    home: Path
    releases: Path
    cloud: Path | None
    teams: dict[str, Path]


def _root_dir(path: Path) -> None:
    """A folder the user can read but not change (links inside it are the platform's)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, 0, 0)
    path.chmod(0o755)


def _link(link: Path, target: Path) -> None:
    if link.is_symlink() and os.readlink(link) == str(target):
        return
    if link.is_symlink() or link.exists():
        _remove(link)
    link.symlink_to(target, target_is_directory=True)


def _remove(entry: Path) -> None:
    """Remove a stale link; anything else (a user's own files) is moved aside, never deleted."""
    if entry.is_symlink():
        entry.unlink()
    elif entry.is_dir() and not any(entry.iterdir()):
        entry.rmdir()
    elif entry.is_dir() and entry.parent.name == "releases":
        shutil.rmtree(entry)  # a release folder of links only: root-owned, the platform's own
    else:
        entry.rename(entry.with_name(f"{entry.name}.moved-aside-{os.getpid()}"))


def _sync_links(folder: Path, wanted: dict[str, Path]) -> None:
    """Make ``folder`` hold exactly the links in ``wanted`` (stale grants disappear)."""
    for entry in list(folder.iterdir()):
        if entry.name not in wanted:
            _remove(entry)
    for name, target in wanted.items():
        _link(folder / name, target)


def prepare_workspace(
    settings: Settings,
    home: Path,
    username: str,
    teams: Iterable[str],
    versions: Iterable[ReleaseVersion],
    account: Account | None,
) -> Workspace:
    """Make (or bring up to date) a user's home: release links, cloud folder, team folders.

    ``account`` is the user's system account when isolating (root), None in the single-user sandbox.
    """
    teams = sorted(teams)
    home.mkdir(parents=True, exist_ok=True)
    if account is not None:
        os.chown(home, account.uid, account.gid)
        home.chmod(0o700)

    make_dir = _root_dir if account is not None else (lambda p: p.mkdir(parents=True, exist_ok=True))
    releases = home / "releases"
    by_release: dict[str, dict[str, Path]] = {}
    for version in versions:
        by_release.setdefault(version.release, {})[version.version] = Path(version.path())
    make_dir(releases)
    for entry in list(releases.iterdir()):
        if entry.name not in by_release:
            _remove(entry)
    for release, links in by_release.items():
        make_dir(releases / release)
        _sync_links(releases / release, links)

    cloud = local_path(settings.cloud.user_url_for(username))
    if cloud is not None:
        cloud.mkdir(parents=True, exist_ok=True)
        if account is not None:
            os.chown(cloud, account.uid, account.gid)
        cloud.chmod(0o700)
        _link(home / "cloud", cloud)

    team_dirs: dict[str, Path] = {}
    for team in teams:
        folder = local_path(settings.cloud.team_url_for(team))
        if folder is None:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        if account is not None:
            os.chown(folder, 0, ensure_group(team_group(team)))
        folder.chmod(0o2770)
        team_dirs[team] = folder
    teams_dir = home / "teams"
    make_dir(teams_dir)
    _sync_links(teams_dir, team_dirs)
    apps = apps_dir()
    if apps.is_dir():  # the Voila apps' notebooks: root's files, so read-only to the user
        _link(home / APPS_LINK, apps)
    place_tutorials(home, account)  # the user's own copies, edits kept (surveyhub.hub.tutorials)
    return Workspace(home, releases, cloud, team_dirs)
