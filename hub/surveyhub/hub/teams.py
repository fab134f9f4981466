"""Teams through JupyterHub's REST API: what ``surveyhub team create|add|remove|list`` does.

A team is a JupyterHub group marked with the ``surveyhub_team`` property, so the hub's admin page, its
API and this command all manage the same thing; membership takes effect at the member's next server start
(the team folder, the team cloud prefix, shared query history).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from surveyhub.hub.access import TEAM_PROPERTY, is_team
from surveyhub.releases.registry import check_name


class TeamError(RuntimeError):
    """The hub refused or could not be reached; names the team and what the hub said."""


@dataclass
class HubClient:
    """A small client of the hub's REST API with an admin token."""

    url: str  # the hub's public URL, e.g. http://127.0.0.1:8000/
    token: str
    timeout: float = 30.0

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; a JSON answer, or None for an empty one."""
        try:
            response = requests.request(
                method,
                f"{self.url.rstrip('/')}/hub/api/{path}",
                headers={"Authorization": f"token {self.token}"},
                timeout=self.timeout,
                **kwargs,
            )
        except requests.ConnectionError as exc:
            raise TeamError(f"the hub at {self.url} does not answer: is it running? ({exc})") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise TeamError(f"{method} {path}: {response.status_code} {message}")
        return response.json() if response.content else None

    def groups(self) -> list[dict[str, Any]]:
        """Every group with its members and properties."""
        return list(self.call("GET", "groups"))

    def group(self, name: str) -> dict[str, Any] | None:
        """One group, or None."""
        try:
            return dict(self.call("GET", f"groups/{name}"))
        except TeamError as exc:
            if " 404 " in str(exc):
                return None
            raise


def _team_name(name: str) -> str:
    try:
        return check_name("team", name)
    except ValueError as exc:
        raise TeamError(str(exc)) from None


def create_team(hub: HubClient, name: str, description: str = "") -> dict[str, Any]:
    """Make a team (or mark an existing group as one)."""
    name = _team_name(name)
    group = hub.group(name)
    if group is None:
        hub.call("POST", f"groups/{name}", json={"users": []})
        group = {"properties": {}}
    properties = dict(group.get("properties") or {}) | {TEAM_PROPERTY: True}
    if description:
        properties["description"] = description
    hub.call("PUT", f"groups/{name}/properties", json=properties)
    return dict(hub.call("GET", f"groups/{name}"))


def _existing_team(hub: HubClient, name: str) -> dict[str, Any]:
    group = hub.group(_team_name(name))
    if group is None:
        raise TeamError(f"no team {name}: make it with `surveyhub team create {name}`")
    if not is_team(group.get("properties")):
        raise TeamError(f"group {name} is not a team (it may grant release access): use the hub's admin page")
    return group


def add_members(hub: HubClient, team: str, users: list[str]) -> dict[str, Any]:
    """Add users (who must exist in the hub) to a team."""
    _existing_team(hub, team)
    known = {u["name"] for u in hub.call("GET", "users")}
    missing = sorted(set(users) - known)
    if missing:
        raise TeamError(
            f"no such hub users: {', '.join(missing)} (they sign up first, or an admin adds them)"
        )
    return dict(hub.call("POST", f"groups/{team}/users", json={"users": users}))


def remove_members(hub: HubClient, team: str, users: list[str]) -> dict[str, Any]:
    """Take users out of a team."""
    _existing_team(hub, team)
    return dict(hub.call("DELETE", f"groups/{team}/users", json={"users": users}))


def list_teams(hub: HubClient, *, all_groups: bool = False) -> list[dict[str, Any]]:
    """Teams (or every group), sorted by name."""
    groups = hub.groups()
    return sorted(
        (g for g in groups if all_groups or is_team(g.get("properties"))), key=lambda g: str(g["name"])
    )
