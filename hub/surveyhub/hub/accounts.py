"""System accounts and groups that isolate users when the hub runs as root (The Littlest JupyterHub's way).

Each hub user's server runs as an unprivileged account of its own (``sh-alice`` for hub user ``alice``:
a prefix keeps hub names from ever meaning ``root`` or ``daemon``). File permissions then do the
isolating: a home, a cloud folder and a team folder belong to accounts and groups, and a restricted release
version is readable only through a Unix group per version. The accounts are made on first spawn with
``useradd``; group membership is set on every spawn, so access granted or revoked in the hub takes effect at
the next start of the server.

>>> account_name("alice")
'sh-alice'
>>> group_name("shr-", "DEMO/v1.1")
'shr-demo-v1_1'
>>> len(account_name("a" * 40)) <= 32
True
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import subprocess
import threading
from dataclasses import dataclass

#: Prefixes of the Unix groups: a team's folder (``sht-``) and a restricted release version (``shr-``).
TEAM_GROUP_PREFIX = "sht-"
VERSION_GROUP_PREFIX = "shr-"

_VALID = re.compile(r"^[a-z_][a-z0-9_-]*$")
_MAX = 32  # Linux's limit on user and group names
# useradd and usermod lock /etc/passwd: twenty users spawning at once must take turns, not fail.
_LOCK = threading.Lock()


class AccountError(RuntimeError):
    """A system account or group could not be made or changed; names the command and what it said."""


def _system_name(prefix: str, name: str) -> str:
    """``prefix + name`` made valid for /etc/passwd; a name that had to change gets a short hash suffix,
    so two hub names that clean up alike (``a.b``, ``a_b``) never share an account."""
    cleaned = re.sub(r"[^a-z0-9_-]", "_", name.lower())
    candidate = prefix + cleaned
    if cleaned == name and _VALID.match(candidate) and len(candidate) <= _MAX:
        return candidate
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{prefix}{cleaned[: _MAX - len(prefix) - 7]}-{digest}"


def account_name(username: str, prefix: str = "sh-") -> str:
    """The system account of a hub user."""
    return _system_name(prefix, username)


def group_name(prefix: str, name: str) -> str:
    """The Unix group of a team (``sht-``) or a release version (``shr-``, from ``RELEASE/VERSION``)."""
    return _system_name(prefix, name.replace("/", "-").replace(".", "_").lower())


@dataclass(frozen=True)
class Account:
    """A system account: name, ids and home."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> Account:
        """The account as /etc/passwd has it (KeyError if there is none)."""
        entry = pwd.getpwnam(name)
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise AccountError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()}")


def ensure_account(name: str, home_root: str) -> Account:
    """The account ``name``, made (with its own group and a private home) if it does not exist yet."""
    with _LOCK:
        try:
            return Account.lookup(name)
        except KeyError:
            pass
        os.makedirs(home_root, mode=0o755, exist_ok=True)
        home = os.path.join(home_root, name)
        _run(["useradd", "--create-home", "--home-dir", home, "--shell", "/bin/bash", "--user-group", name])
        os.chmod(home, 0o700)
        return Account.lookup(name)


def ensure_group(name: str) -> int:
    """The gid of Unix group ``name``, made if needed."""
    with _LOCK:
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            _run(["groupadd", name])
            return grp.getgrnam(name).gr_gid


def set_supplementary_groups(account: str, groups: set[str], managed_prefixes: tuple[str, ...]) -> None:
    """Make ``account``'s groups among the managed prefixes exactly ``groups`` (others are left alone)."""
    for group in groups:
        ensure_group(group)
    with _LOCK:
        current = {g.gr_name for g in grp.getgrall() if account in g.gr_mem}
        keep = {g for g in current if not g.startswith(managed_prefixes)}
        wanted = keep | groups
        if wanted != current:
            _run(["usermod", "-G", ",".join(sorted(wanted)), account])
