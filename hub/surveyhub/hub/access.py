"""What one hub user may reach: the release versions their groups grant, and the teams they are in.

JupyterHub groups do two jobs here. A release version's policy names groups (``lamost-wg``); a group whose
JupyterHub ``properties`` carry ``{"surveyhub_team": true}`` is also a team, with a folder and a cloud
prefix (``surveyhub team create`` marks it so). Every spawner (local processes or Kubernetes) and the
credential broker work from the same :class:`UserAccess`, so they cannot disagree about who reaches what.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from surveyhub.releases.registry import ReleaseStore, ReleaseVersion

#: The JupyterHub group property that makes a group a team.
TEAM_PROPERTY = "surveyhub_team"


def is_team(properties: dict[str, Any] | None) -> bool:
    """Whether a group with these JupyterHub properties is a team."""
    return bool((properties or {}).get(TEAM_PROPERTY))


@dataclass(frozen=True)
class UserAccess:
    """A user's groups, teams and readable release versions, as of one spawn."""

    username: str
    groups: frozenset[str]
    teams: tuple[str, ...]
    versions: tuple[ReleaseVersion, ...]

    @classmethod
    def of(cls, username: str, groups: Iterable[Any], store: ReleaseStore) -> UserAccess:
        """From JupyterHub group objects (anything with ``name`` and ``properties``) and the store."""
        groups = list(groups)
        names = frozenset(g.name for g in groups)
        teams = tuple(sorted(g.name for g in groups if is_team(getattr(g, "properties", None))))
        return cls(username, names, teams, tuple(store.versions(names)))

    @property
    def version_keys(self) -> list[str]:
        """``RELEASE/VERSION`` of every readable version."""
        return [v.key for v in self.versions]
