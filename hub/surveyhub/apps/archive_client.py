"""The archive service as the apps' kernels reach it: the addresses and token the hub put in the server.

Inside a user's server the hub sets ``SURVEYHUB_ARCHIVE_URL`` (the archive behind the proxy, as this
machine reaches it) and ``SURVEYHUB_ARCHIVE_TOKEN`` (the server's own token, carrying
``access:services!service=archive``). Links shown in the browser go through the hub's public prefix
instead (``JUPYTERHUB_BASE_URL`` + ``services/archive/``), where the browser's OAuth cookie opens them.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from surveyhub.releases.spectrum import Spectrum, read_spectrum


class ArchiveUnavailable(RuntimeError):
    """The archive could not be reached or refused a request; the message says what to do."""


class NotReadable(LookupError):
    """A version that is not yours to read, or a spectrum that is not there: said plainly, no data."""


@dataclass(frozen=True)
class VersionInfo:
    """A readable version as ``api/releases`` lists it."""

    release: str
    version: str
    title: str
    published: str
    counts: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.release}/{self.version}"


class AppArchive:
    """A small client of the archive's JSON API and spectrum routes, with the server's token."""

    def __init__(
        self, url: str | None = None, token: str | None = None, public_url: str | None = None
    ) -> None:
        self.url = url if url is not None else os.environ.get("SURVEYHUB_ARCHIVE_URL", "")
        if not self.url:
            raise ArchiveUnavailable(
                "no archive service configured (SURVEYHUB_ARCHIVE_URL is unset): open this app from your "
                "server on the platform"
            )
        self.url = self.url.rstrip("/") + "/"
        self.token = (
            token
            if token is not None
            else (os.environ.get("SURVEYHUB_ARCHIVE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN", ""))
        )
        default_public = os.environ.get("JUPYTERHUB_BASE_URL", "/").rstrip("/") + "/services/archive/"
        self.public_url = (public_url or default_public).rstrip("/") + "/"
        self.session = requests.Session()
        if self.token:
            self.session.headers["Authorization"] = f"token {self.token}"

    def _get(self, path: str, params: Any = None) -> requests.Response:
        try:
            response = self.session.get(self.url + path, params=params, timeout=60)
        except requests.RequestException as exc:
            raise ArchiveUnavailable(f"the archive service is not reachable ({exc})") from None
        if response.status_code == 404:
            raise NotReadable(_reason(response) or f"{path}: not found")
        if response.status_code in (401, 403):
            raise ArchiveUnavailable(f"the archive refused this server's token ({response.status_code})")
        if response.status_code >= 400:
            raise ArchiveUnavailable(_reason(response) or f"the archive answered {response.status_code}")
        return response

    def versions(self) -> list[VersionInfo]:
        """The versions the user may read (the archive decides from their hub groups)."""
        out = []
        for item in self._get("api/releases").json()["releases"]:
            out.append(
                VersionInfo(
                    item["release"],
                    item["version"],
                    item.get("title", ""),
                    item.get("published", ""),
                    item.get("counts", {}),
                )
            )
        return out

    def search(self, release: str, version: str, params: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """The exact total and the rows (dicts) of a search; a bad parameter raises ValueError naming it."""
        try:
            response = self.session.get(
                self.url + f"api/{release}/{version}/search", params=params, timeout=60
            )
        except requests.RequestException as exc:
            raise ArchiveUnavailable(f"the archive service is not reachable ({exc})") from None
        if response.status_code == 400:
            raise ValueError(_reason(response) or "the archive refused the search")
        if response.status_code == 404:
            raise NotReadable(f"{release} {version} is not a version you can read")
        if response.status_code >= 400:
            raise ArchiveUnavailable(_reason(response) or f"the archive answered {response.status_code}")
        body = response.json()
        names = [c["name"] for c in body["columns"]]
        return body["total"], [dict(zip(names, row, strict=True)) for row in body["rows"]]

    def row(self, release: str, version: str, obsid: int) -> dict[str, Any]:
        """The whole catalog row of ``obsid`` (every column, LAMOST's missing values kept)."""
        return self._get(f"api/{release}/{version}/spectra/{int(obsid)}/info").json()

    def spectrum(self, release: str, version: str, obsid: int) -> Spectrum:
        """The released file of ``obsid``, read (flux, ivar, masks and header metadata)."""
        data = self._get(f"api/{release}/{version}/spectra/{int(obsid)}/fits").content
        return read_spectrum(io.BytesIO(data))

    def links(
        self, release: str, version: str, obsid: int, ra: float | None, dec: float | None
    ) -> dict[str, str]:
        """Browser links (through the hub's public prefix) to a spectrum's products and its SSA query."""
        base = f"{self.public_url}api/{release}/{version}/spectra/{int(obsid)}/"
        out = {kind: base + kind for kind in ("fits", "png", "csv", "info")}
        if ra is not None and dec is not None:
            query = urlencode({"POS": f"{ra:.6f},{dec:.6f}", "SIZE": "0.001"})
            out["ssa"] = f"{self.public_url}ssa/{release}/{version}?{query}"
        return out


def _reason(response: requests.Response) -> str:
    """The archive's own words for a refusal (its JSON error, or the HTTP reason)."""
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(body, dict):
        return str(body.get("error") or body.get("message") or response.reason or "")
    return response.reason or ""
