"""The server extension: configuration (traitlets, defaulting to the hub's environment) and its routes.

Inside the platform the hub sets ``SURVEYHUB_*`` variables in every user's server
(``surveyhub.hub.environment``); each has a trait here so tests and operators can set it in Jupyter's
config instead (``c.SurveyhubLab.cloud_url = ...``). A server started outside the platform loads the
extension too (it is enabled for the whole environment), and then answers 503 ``not_configured`` with the
missing variable's name rather than failing to start.
"""

from __future__ import annotations

import json
import os
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, Float, Int, Unicode, default

from surveyhub_lab.archive_client import ArchiveClient
from surveyhub_lab.imports import ImportManager
from surveyhub_lab.spaces import Spaces


def _env_json(name: str, fallback: Any) -> Any:
    """A JSON environment variable, or ``fallback`` when unset or not JSON (a bad value is not fatal)."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return fallback
    try:
        return json.loads(raw)
    except ValueError:
        return fallback


class SurveyhubLab(ExtensionApp):
    """The ``surveyhub_lab`` server extension of JupyterLab: archive proxy, destinations and imports."""

    name = "surveyhub_lab"
    load_other_extensions = True

    archive_url = Unicode(
        help="The archive service's base URL, ending with '/' (SURVEYHUB_ARCHIVE_URL)."
    ).tag(config=True)
    archive_token = Unicode(
        help="The user's token for the archive (SURVEYHUB_ARCHIVE_TOKEN, else JUPYTERHUB_API_TOKEN)."
    ).tag(config=True)
    tap_url = Unicode(help="The archive's TAP endpoint (SURVEYHUB_TAP_URL).").tag(config=True)
    cloud_url = Unicode(
        help="fsspec URL of the user's own space, ending with '/' (SURVEYHUB_CLOUD_URL)."
    ).tag(config=True)
    cloud_storage_options = Dict(
        help="fsspec storage options of the user's and teams' spaces (SURVEYHUB_CLOUD_STORAGE_OPTIONS)."
    ).tag(config=True)
    teams = Dict(help="The user's teams and their spaces, {team: url} (SURVEYHUB_TEAMS).").tag(config=True)
    store_url = Unicode(
        help="The release store root, a path or URL (SURVEYHUB_STORE_URL, else SURVEYHUB_RELEASES_DIR)."
    ).tag(config=True)
    store_storage_options = Dict(
        help="fsspec storage options of the store (SURVEYHUB_STORE_STORAGE_OPTIONS)."
    ).tag(config=True)
    releases_dir = Unicode(
        help="The user's ~/releases folder of granted versions (SURVEYHUB_RELEASES_DIR)."
    ).tag(config=True)
    index_url = Unicode(
        help="Where pointers to the user's imports are kept (default: <cloud_url>.surveyhub/imports/)."
    ).tag(config=True)
    concurrency = Int(8, help="Files copied at once by all imports of this server together.").tag(config=True)
    local_concurrency = Int(
        2,
        help="Files one import copies at once when store and destination are both local disk (at most "
        "`concurrency`): local copies are CPU work, so more workers than cores only contend.",
    ).tag(config=True)
    quota_bytes = Int(
        0,
        help="Most bytes a destination space may hold after an import (0: no quota); checked before copying.",
    ).tag(config=True)
    rate_limit = Float(
        0, help="Bytes per second all imports of this server may read together (0: no limit)."
    ).tag(config=True)
    max_obsids = Int(100_000, help="Most obsids one import may name.").tag(config=True)
    download_max_rows = Int(
        1_000_000, help="Most rows a table download may hold (the archive's own page limit by default)."
    ).tag(config=True)

    @default("archive_url")
    def _archive_url(self) -> str:
        return os.environ.get("SURVEYHUB_ARCHIVE_URL", "")

    @default("archive_token")
    def _archive_token(self) -> str:
        return os.environ.get("SURVEYHUB_ARCHIVE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("tap_url")
    def _tap_url(self) -> str:
        return os.environ.get("SURVEYHUB_TAP_URL", "")

    @default("cloud_url")
    def _cloud_url(self) -> str:
        return os.environ.get("SURVEYHUB_CLOUD_URL", "")

    @default("cloud_storage_options")
    def _cloud_storage_options(self) -> dict:
        return _env_json("SURVEYHUB_CLOUD_STORAGE_OPTIONS", {})

    @default("teams")
    def _teams(self) -> dict:
        return _env_json("SURVEYHUB_TEAMS", {})

    @default("store_url")
    def _store_url(self) -> str:
        # ~/releases mirrors the store's <release>/<version>/ layout for the granted versions, so it serves
        # as a store root when the hub does not name the store itself.
        return os.environ.get("SURVEYHUB_STORE_URL") or os.environ.get("SURVEYHUB_RELEASES_DIR", "")

    @default("store_storage_options")
    def _store_storage_options(self) -> dict:
        return _env_json("SURVEYHUB_STORE_STORAGE_OPTIONS", {})

    @default("releases_dir")
    def _releases_dir(self) -> str:
        return os.environ.get("SURVEYHUB_RELEASES_DIR", "")

    def initialize_settings(self) -> None:
        """Build the archive client, the spaces and the import engine (nothing is read or written yet)."""
        self.archive = ArchiveClient(self.archive_url, self.archive_token)
        self.spaces = Spaces(self.cloud_url, self.teams, self.cloud_storage_options)
        self.imports = ImportManager(
            archive=self.archive,
            spaces=self.spaces,
            store_url=self.store_url,
            store_options=self.store_storage_options,
            index_url=self.index_url or None,
            concurrency=self.concurrency,
            local_concurrency=self.local_concurrency,
            quota_bytes=self.quota_bytes,
            rate_limit=self.rate_limit,
            max_obsids=self.max_obsids,
        )
        if not self.archive_url or not self.cloud_url:
            self.log.info(
                "surveyhub_lab: outside the platform (no SURVEYHUB_ARCHIVE_URL/CLOUD_URL): routes answer 503"
            )

    def initialize_handlers(self) -> None:
        """Register the routes under ``<base_url>surveyhub/``."""
        from surveyhub_lab.handlers import routes

        self.handlers.extend(routes({"lab": self}))

    async def stop_extension(self) -> None:
        """The server is stopping: running imports stop as *interrupted*, with their state saved."""
        await self.imports.shutdown()
