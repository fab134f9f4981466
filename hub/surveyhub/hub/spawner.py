"""The spawner of the embedded default: JupyterHub's LocalProcessSpawner, with accounts, mounts and env.

Before a server starts, the hub (as root) makes the user's account and sets its Unix groups from their hub
groups (teams and the release versions those groups may read), lays out the home (``~/releases``,
``~/cloud``, ``~/teams``), asks the credential broker for S3 keys if cloud space is on S3, and only then
starts ``jupyterhub-singleuser`` as that account. Everything a user may reach follows from their hub groups
at that moment, so revoking a group takes effect at the next start.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from traitlets import Any as AnyTrait
from traitlets import Bool, default

from surveyhub.hub.access import UserAccess
from surveyhub.hub.accounts import (
    TEAM_GROUP_PREFIX,
    VERSION_GROUP_PREFIX,
    Account,
    account_name,
    ensure_account,
    set_supplementary_groups,
)
from surveyhub.hub.environment import server_environment
from surveyhub.hub.settings import Settings
from surveyhub.hub.workspace import prepare_workspace, secure_store, team_group, version_group
from surveyhub.releases.registry import ReleaseStore


def running_as_root() -> bool:
    """Whether the hub can isolate users (it needs root to make accounts and change owners)."""
    return os.geteuid() == 0


class SurveyhubSpawner(LocalProcessSpawner):
    """Local processes, one system account each (when root), with the platform's folders and environment."""

    platform = AnyTrait(help="The platform's Settings (set by surveyhub.hub.configure).").tag(config=True)
    isolate = Bool(help="Run each server as the user's own system account (needs root).").tag(config=True)

    @default("isolate")
    def _isolate_default(self) -> bool:
        return running_as_root()

    _brokers: ClassVar[dict[int, Any]] = {}  # one credential broker per settings object, made once
    _access: UserAccess | None = None
    _account: Account | None = None
    _home: Path | None = None
    _extra_env: dict[str, str] | None = None

    @property
    def settings(self) -> Settings:
        """The platform settings this spawner was configured with."""
        if not isinstance(self.platform, Settings):
            raise RuntimeError(
                "SurveyhubSpawner.platform is not set: build the hub with surveyhub.hub.configure"
            )
        return self.platform

    def _prepare(self, groups: list[SimpleNamespace]) -> None:
        """The blocking part of a start (accounts, permissions, folders), run in a thread.

        ``groups`` are copies read on the event loop: the hub's database session is not for threads.
        """
        settings = self.settings
        store = ReleaseStore(settings.store.root, settings.store.storage_options or None)
        if self.isolate:
            secure_store(store)
        access = UserAccess.of(self.user.name, groups, store)
        account = None
        if self.isolate:
            account = ensure_account(
                account_name(self.user.name, settings.users.account_prefix), settings.users.home_root
            )
            wanted = {team_group(t) for t in access.teams}
            wanted |= {version_group(v) for v in access.versions if not v.manifest.policy.public}
            set_supplementary_groups(account.name, wanted, (TEAM_GROUP_PREFIX, VERSION_GROUP_PREFIX))
            home = Path(account.home)
        else:
            home = Path(settings.home) / "sandbox" / self.user.name
        prepare_workspace(settings, home, self.user.name, access.teams, access.versions, account)
        self._access, self._account, self._home = access, account, home

    async def start(self) -> Any:
        """Prepare the account and folders, then start the server as that account."""
        groups = [SimpleNamespace(name=g.name, properties=dict(g.properties or {})) for g in self.user.groups]
        await asyncio.to_thread(self._prepare, groups)
        self._extra_env = await self._credentials()
        if not self.isolate:
            self.popen_kwargs = {**self.popen_kwargs, "cwd": str(self._home)}
        return await super().start()

    def _broker(self) -> Any:
        """The settings' credential broker (None for local cloud space), built once, not per spawn."""
        key = id(self.settings)
        if key not in self._brokers:
            from surveyhub.hub.credentials import make_broker

            self._brokers[key] = make_broker(self.settings.cloud)
        return self._brokers[key]

    async def stop(self, now: bool = False) -> None:
        """Stop the server, then take back its S3 keys (IAM users; STS credentials simply expire)."""
        await super().stop(now=now)
        broker = self._broker()
        if broker is not None:
            await broker.revoke(self.user.name)

    async def _credentials(self) -> dict[str, str]:
        """S3 keys for the user's and teams' prefixes, from the broker (none for local cloud space)."""
        broker = self._broker()
        if broker is None or self._access is None:
            return {}
        creds = await broker.issue(self.user.name, list(self._access.teams))
        return creds.environment() | {"SURVEYHUB_CLOUD_STORAGE_OPTIONS": json.dumps(creds.storage_options())}

    def make_preexec_fn(self, name: str) -> Any:
        """Become the user's account (isolated), with umask 002 so team folders stay shared."""
        become = set_user_setuid(self._account.name) if self.isolate and self._account else None

        def preexec() -> None:
            if become is not None:
                become()
            os.umask(0o002)

        return preexec

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        """USER, HOME and SHELL of the account (or of the sandbox)."""
        if self._account is not None:
            env["USER"] = self._account.name
            env["HOME"] = self._account.home
            env["SHELL"] = "/bin/bash"
        elif self._home is not None:
            env["HOME"] = str(self._home)
        return env

    def get_env(self) -> dict[str, str]:
        """JupyterHub's variables plus the platform's (archive, TAP, gateway, cloud, teams, releases)."""
        env = super().get_env()
        teams = self._access.teams if self._access else ()
        home = self._home or Path("~")
        stored = self._extra_env or {}
        options = stored.get("SURVEYHUB_CLOUD_STORAGE_OPTIONS")
        env |= server_environment(
            self.settings,
            self.user.name,
            teams,
            releases_dir=str(home / "releases"),
            credentials_env={k: v for k, v in stored.items() if k != "SURVEYHUB_CLOUD_STORAGE_OPTIONS"},
            token=env.get("JUPYTERHUB_API_TOKEN"),
        )
        if options:
            env["SURVEYHUB_CLOUD_STORAGE_OPTIONS"] = options
        return env

    def get_args(self) -> list[str]:
        """Root's own server (the single-user sandbox on a root machine) needs ``--allow-root``."""
        args = list(super().get_args())
        if not self.isolate and os.geteuid() == 0:
            args.append("--allow-root")
        return args

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        python = self.platform.users.python if isinstance(self.platform, Settings) else ""
        return [str(Path(python or sys.executable).with_name("jupyterhub-singleuser"))]
