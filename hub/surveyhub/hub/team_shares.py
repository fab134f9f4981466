"""Team shares that work: JupyterHub's server shares with a group, carried out as shares with its members.

JupyterHub lets a user share a server with a group (``POST /hub/api/shares/alice/ {"group": "astro"}``),
and its consent page admits the group's members, but JupyterHub 6.1 drops group-granted scopes when it
checks the OAuth token the member's browser then presents (``scopes.get_scopes_for`` adds only the token
owner's *own* shares), so the member is refused at the server's door. This hub service closes the gap
without changing how people share: every few seconds it reads each team's shares and gives every current
member the same share as a user (never the server's owner), and takes back the user shares it made once
the member leaves the team or the group share is revoked. Shares that people made themselves are never
touched: the service remembers which ones it made.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from surveyhub.hub.access import is_team
from surveyhub.hub.teams import HubClient, TeamError

log = logging.getLogger("surveyhub.team-shares")

#: One derived share: (owner, server name, member).
Derived = tuple[str, str, str]
#: The hub scopes this service needs.
SCOPES = ["list:groups", "read:groups", "read:groups:shares", "list:users", "read:users:name", "shares"]


def wanted_shares(hub: HubClient) -> set[Derived]:
    """Every (owner, server, member) that a team share implies now."""
    wanted: set[Derived] = set()
    for group in hub.groups():
        if not is_team(group.get("properties")):
            continue
        shares = hub.call("GET", f"groups/{group['name']}/shared") or {}
        for share in shares.get("items", []):
            server = share["server"]
            owner, name = server["user"]["name"], server["name"]
            wanted |= {(owner, name, member) for member in group["users"] if member != owner}
    return wanted


def sync(hub: HubClient, made: set[Derived]) -> set[Derived]:
    """Grant missing member shares, revoke stale ones we made; returns what we have made now."""
    wanted = wanted_shares(hub)
    for owner, server, member in sorted(wanted - made):
        try:
            hub.call("POST", f"shares/{owner}/{server}", json={"user": member})
            log.info("shared %s/%s with team member %s", owner, server, member)
        except TeamError as exc:  # the server or the user may have gone meanwhile: try again next round
            log.warning("could not share %s/%s with %s: %s", owner, server, member, exc)
            wanted.discard((owner, server, member))
    for owner, server, member in sorted(made - wanted):
        try:
            hub.call("PATCH", f"shares/{owner}/{server}", json={"user": member})  # DELETE would drop all
            log.info("unshared %s/%s from former member %s", owner, server, member)
        except TeamError as exc:
            if " 404 " not in str(exc):
                log.warning("could not unshare %s/%s from %s: %s", owner, server, member, exc)
                wanted.add((owner, server, member))
    return wanted


def _load(path: Path) -> set[Derived]:
    try:
        return {tuple(entry) for entry in json.loads(path.read_text())}  # type: ignore[misc]
    except (OSError, ValueError):
        return set()


def _save(path: Path, made: Iterable[Derived]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(sorted(made)))
    temporary.replace(path)


def main(argv: list[str] | None = None) -> int:
    """Run as a JupyterHub-managed service (it reads JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between two rounds")
    parser.add_argument("--state", required=True, help="file remembering the shares this service made")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(levelname)1.1s %(asctime)s TeamShares] %(message)s")
    api = os.environ["JUPYTERHUB_API_URL"].removesuffix("/").removesuffix("/hub/api")
    hub = HubClient(api + "/", os.environ["JUPYTERHUB_API_TOKEN"])
    state = Path(args.state)
    made = _load(state)
    try:
        while True:
            try:
                now = sync(hub, made)
                if now != made:
                    _save(state, now)
                made = now
            except TeamError as exc:
                log.warning("round skipped: %s", exc)
            time.sleep(args.interval)
    except KeyboardInterrupt:  # the hub stops its services with SIGINT
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
