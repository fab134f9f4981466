"""Where imports may go: the user's own cloud space and their teams' spaces, and nowhere else.

A destination is named by the browser as ``{"space": "user" | "team:<name>", "folder": "relative/path"}``;
the URLs behind those names come from the hub (``SURVEYHUB_CLOUD_URL``, ``SURVEYHUB_TEAMS``), never from
the request. The folder is checked as text before it is joined to the space (no ``..``, no absolute paths
or URLs, no hidden names), and the joined path is checked again to lie inside the space, so neither path
traversal nor another user's prefix can be reached, whatever the storage's own permissions would allow.

>>> spaces = Spaces("file:///srv/cloud/users/alice/", {"astro": "file:///srv/cloud/teams/astro/"})
>>> target = spaces.resolve({"space": "team:astro", "folder": "runs/2026/"})
>>> target.url, target.folder
('file:///srv/cloud/teams/astro/runs/2026/', 'runs/2026')
>>> spaces.resolve({"space": "user", "folder": "../bob/x"})
Traceback (most recent call last):
...
surveyhub_lab.errors.Refused: destination.folder: '..' is not allowed: the folder must stay inside your space
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import fsspec
from fsspec import AbstractFileSystem

from surveyhub_lab.errors import Refused

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_FOLDER_CHARS = 1024


@dataclass(frozen=True)
class Space:
    """One space the user may write: ``user`` or ``team:<name>``, at an fsspec URL ending with '/'."""

    name: str
    label: str
    url: str
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def _fs_root(self) -> tuple[AbstractFileSystem, str]:
        fs, root = fsspec.core.url_to_fs(self.url, **dict(self.storage_options))
        return fs, root.rstrip("/")

    @property
    def fs(self) -> AbstractFileSystem:
        """The space's filesystem, opened with the user's own storage options (credentials)."""
        return self._fs_root[0]

    @property
    def root(self) -> str:
        """The space's root in the filesystem's own form (no protocol, no trailing '/')."""
        return self._fs_root[1]

    def to_json(self) -> dict[str, Any]:
        """What ``GET surveyhub/destinations`` shows of the space."""
        return {
            "space": self.name,
            "kind": "team" if self.name.startswith("team:") else "user",
            "label": self.label,
            "url": self.url,
        }


@dataclass(frozen=True)
class Target:
    """A checked destination: a folder inside one of the user's spaces."""

    space: Space
    folder: str  # normalised, relative to the space, no trailing '/'

    @property
    def fs(self) -> AbstractFileSystem:
        """The filesystem of the space."""
        return self.space.fs

    @property
    def path(self) -> str:
        """The folder in the filesystem's own form."""
        return posixpath.join(self.space.root, self.folder)

    @property
    def url(self) -> str:
        """The folder's full URL, ending with '/' (what users paste into ``fsspec.open``)."""
        return self.space.url + self.folder + "/"

    def to_json(self) -> dict[str, Any]:
        """The destination as the API reports it."""
        return {"space": self.space.name, "folder": self.folder, "url": self.url}


def clean_folder(folder: Any) -> str:
    """Check a folder given by the browser and return it normalised (``a/b``); Refused names the fault."""
    if not isinstance(folder, str) or not folder.strip("/ "):
        raise Refused(
            400,
            "destination_invalid",
            "destination.folder: give a folder inside the space, e.g. 'imports/run1'",
        )
    if len(folder) > MAX_FOLDER_CHARS:
        raise Refused(
            400, "destination_invalid", f"destination.folder: longer than {MAX_FOLDER_CHARS} characters"
        )
    if "://" in folder or folder.startswith(("/", "~")) or "\\" in folder or _CONTROL.search(folder):
        raise Refused(
            400,
            "destination_invalid",
            f"destination.folder: {folder!r} must be a plain path relative to the space "
            "(no URL, no leading '/' or '~', no backslashes or control characters)",
        )
    parts = [p for p in folder.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused(
            400,
            "destination_invalid",
            "destination.folder: '..' is not allowed: the folder must stay inside your space",
        )
    hidden = [p for p in parts if p.startswith(".")]
    if hidden:
        raise Refused(
            400,
            "destination_invalid",
            f"destination.folder: {hidden[0]!r}: names starting with '.' are reserved (for import state)",
        )
    return "/".join(parts)


class Spaces:
    """The user's space and their teams' spaces, from the hub's environment."""

    def __init__(
        self,
        user_url: str,
        teams: Mapping[str, str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        options = dict(storage_options or {})
        self._spaces: dict[str, Space] = {}
        if user_url:
            self._spaces["user"] = Space("user", "Your space", _with_slash(user_url), options)
        for team, url in sorted((teams or {}).items()):
            # On S3 the user's credentials reach their teams' prefixes too (the hub's credential broker).
            self._spaces[f"team:{team}"] = Space(f"team:{team}", f"Team {team}", _with_slash(url), options)

    def __iter__(self):
        return iter(self._spaces.values())

    @property
    def user(self) -> Space | None:
        """The user's own space (None outside the platform)."""
        return self._spaces.get("user")

    def get(self, name: Any) -> Space:
        """The space called ``name``; Refused (403) for anything else, such as another user's prefix."""
        space = self._spaces.get(name) if isinstance(name, str) else None
        if space is None:
            known = ", ".join(self._spaces) or "none (no cloud space is configured)"
            raise Refused(
                403,
                "destination_forbidden",
                f"destination.space: {name!r} is not one of your spaces; yours are: {known}",
            )
        return space

    def resolve(self, destination: Any) -> Target:
        """Check a destination ``{"space", "folder"}`` and return where it points."""
        if not isinstance(destination, Mapping):
            raise Refused(
                400,
                "destination_invalid",
                'destination: give {"space": "user" or "team:<name>", "folder": "relative/path"}',
            )
        space = self.get(destination.get("space", "user"))
        folder = clean_folder(destination.get("folder"))
        target = Target(space, folder)
        # The text checks above already keep the folder inside; this says so of the joined path itself.
        normalised = posixpath.normpath(target.path)
        if not normalised.startswith(space.root + "/"):
            raise Refused(400, "destination_invalid", f"destination.folder: {folder!r} leaves the space")
        return target


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"
