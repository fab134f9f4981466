"""Who is asking: the caller's name and groups, from which every access decision follows.

The archive never decides access from anything but the caller's groups. Identity providers:

- :class:`AnonymousIdentity`: everyone is anonymous (public versions only), or refused when anonymous
  access is off (the default);
- :class:`StaticTokenIdentity`: fixed tokens mapped to users and groups, for development and for tests
  of the standalone service (the pattern of Zero to JupyterHub's dev config with a fixed service token).

Tokens are read as JupyterHub's own clients send them: ``Authorization: token T``, ``Authorization:
Bearer T``, or ``?token=T`` (VO clients and LAMOST scripts).
"""

from __future__ import annotations

import hmac
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tornado.web import RequestHandler


@dataclass(frozen=True)
class Caller:
    """An authenticated (or anonymous) caller."""

    name: str | None
    groups: frozenset[str] = field(default_factory=frozenset)

    @property
    def anonymous(self) -> bool:
        """True for a caller without a name (public versions only)."""
        return self.name is None


ANONYMOUS = Caller(None)


class Identity(Protocol):
    """Maps a request to a caller, or None when it must be refused (401)."""

    async def identify(self, handler: RequestHandler) -> Caller | None:
        """The caller of ``handler``'s request."""
        ...


def request_token(handler: RequestHandler) -> str | None:
    """The token of a request: Authorization header (``token``/``Bearer``) or the ``token`` argument."""
    header = handler.request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("token", "bearer") and value.strip():
        return value.strip()
    token = handler.get_query_argument("token", None)
    return token or None


@dataclass
class AnonymousIdentity:
    """No accounts: anonymous callers (public versions) when allowed, otherwise everyone is refused."""

    allow_anonymous: bool = False

    async def identify(self, handler: RequestHandler) -> Caller | None:
        """Anonymous, or None when anonymous access is off."""
        return ANONYMOUS if self.allow_anonymous else None


@dataclass
class StaticTokenIdentity:
    """Fixed tokens (from a TOML file: ``[tokens.<token>] user = "alice", groups = ["lamost-wg"]``).

    A top-level ``teams = ["astro"]`` in the file says which groups are teams (the hub's
    ``surveyhub_team`` group property, standalone).
    """

    tokens: Mapping[str, Caller]
    allow_anonymous: bool = False
    team_groups: frozenset[str] = frozenset()

    @classmethod
    def from_file(cls, path: str | Path, *, allow_anonymous: bool = False) -> StaticTokenIdentity:
        """Read the tokens file; a clear error names what is wrong in it."""
        try:
            doc = tomllib.loads(Path(path).read_text())
            tokens = {
                token: Caller(str(entry["user"]), frozenset(entry.get("groups", [])))
                for token, entry in doc.get("tokens", {}).items()
            }
            teams = frozenset(str(t) for t in doc.get("teams", []))
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"tokens file {path}: {exc}") from exc
        return cls(tokens, allow_anonymous, teams)

    async def teams_of(self, caller: Caller) -> frozenset[str]:
        """The caller's groups that the file names as teams."""
        return caller.groups & self.team_groups

    async def identify(self, handler: RequestHandler) -> Caller | None:
        """The token's caller; anonymous without a token when allowed; None for a wrong token."""
        token = request_token(handler)
        if token is None:
            return ANONYMOUS if self.allow_anonymous else None
        for known, caller in self.tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return caller
        return None


async def caller_teams(identity: Identity, caller: Caller) -> frozenset[str]:
    """The caller's teams: the identity provider says which groups are teams (none when it cannot).

    Teams, not every group: a release-access group (``lamost-partners``) holds people who never chose to
    work together, so queries are shared with, and workbench lists belong to, teams only.
    """
    if caller.anonymous:
        return frozenset()
    teams_of = getattr(identity, "teams_of", None)
    if teams_of is None:
        return frozenset()
    return frozenset(await teams_of(caller))
