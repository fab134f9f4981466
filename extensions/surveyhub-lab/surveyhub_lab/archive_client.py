"""The archive service as the user's server sees it: HTTP calls carrying the user's own token.

The server extension never decides on its own what a user may read: it asks the archive (``api/releases``),
which knows the user's groups through the hub. So every call here carries the user's token, and the
archive's answers (including its JSON errors) are passed on to the browser unchanged where they are proxied.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

#: Obsids per search request: keeps each URL well under tornado's and proxies' header limits (~6 kB).
OBSIDS_PER_REQUEST = 500


class ArchiveError(Exception):
    """The archive refused or failed a request; ``status`` and ``message`` are the archive's own."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ArchiveResponse:
    """One answer of the archive, kept whole so a proxy can hand it on as it came."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def content_type(self) -> str:
        """The archive's ``Content-Type`` (JSON when it did not say)."""
        return self.headers.get("Content-Type", "application/json")

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body or b"null")

    def error_message(self) -> str:
        """The archive's error text (``{"error": ...}``), or the start of the body when it is not JSON."""
        try:
            payload = self.json()
        except ValueError:
            return self.body[:200].decode(errors="replace") or f"HTTP {self.status}"
        if isinstance(payload, dict) and payload.get("error"):
            return str(payload["error"])
        return f"HTTP {self.status}"


@dataclass(frozen=True)
class ReadableVersion:
    """A release version the archive says the user may read, with what ``api/releases`` tells of it."""

    release: str
    version: str
    info: Mapping[str, Any]

    @property
    def key(self) -> str:
        """``release/version``."""
        return f"{self.release}/{self.version}"


#: Response headers a proxy passes on (the rest are hop-by-hop or the archive's own business).
PASSED_HEADERS = ("Content-Type", "Content-Disposition", "Cache-Control")


class ArchiveClient:
    """Calls to the archive service at ``base_url`` (ending with '/') with the user's ``token``."""

    def __init__(self, base_url: str, token: str, *, request_timeout: float = 300.0) -> None:
        if base_url and not base_url.endswith("/"):
            base_url += "/"
        self.base_url = base_url
        self.token = token
        self.request_timeout = request_timeout

    @property
    def configured(self) -> bool:
        """Whether there is an archive to talk to (a server outside the platform has none)."""
        return bool(self.base_url)

    def url(self, path: str, params: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> str:
        """The full URL of ``path`` (relative to the archive's base) with query parameters."""
        query = urlencode(list(params.items()) if isinstance(params, Mapping) else list(params))
        return self.base_url + path + (f"?{query}" if query else "")

    async def get(
        self, path: str, params: Iterable[tuple[str, str]] | Mapping[str, str] = ()
    ) -> ArchiveResponse:
        """GET ``path``; any status comes back as a response (errors too), never as an exception.

        A connection failure is the one exception (ArchiveError 502), since there is no answer to pass on.
        """
        return await self.post(path, params, None)

    async def post(
        self,
        path: str,
        params: Iterable[tuple[str, str]] | Mapping[str, str] = (),
        body: bytes | None = b"",
        content_type: str = "application/x-www-form-urlencoded",
    ) -> ArchiveResponse:
        """POST ``body`` to ``path`` (a GET when ``body`` is None); answers as :meth:`get` does."""
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        if body is not None:
            headers["Content-Type"] = content_type
        request = HTTPRequest(
            self.url(path, params),
            method="GET" if body is None else "POST",
            headers=headers,
            body=body,
            request_timeout=self.request_timeout,
        )
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            raise ArchiveError(502, f"the archive service at {self.base_url} did not answer: {exc}") from exc
        if response.code == 599:  # tornado's code for "no HTTP answer" (timeout, refused connection)
            raise ArchiveError(
                502, f"the archive service at {self.base_url} did not answer: {response.error}"
            )
        kept = {name: response.headers[name] for name in PASSED_HEADERS if name in response.headers}
        return ArchiveResponse(response.code, response.body or b"", kept)

    async def get_json(self, path: str, params: Iterable[tuple[str, str]] | Mapping[str, str] = ()) -> Any:
        """GET ``path`` and parse its JSON; an error status raises ArchiveError with the archive's words."""
        response = await self.get(path, params)
        if response.status != 200:
            raise ArchiveError(response.status, response.error_message())
        return response.json()

    async def readable_versions(self) -> tuple[str, dict[str, ReadableVersion]]:
        """The user's name and the versions they may read, keyed ``release/version`` (``api/releases``)."""
        payload = await self.get_json("api/releases")
        versions = {
            f"{r['release']}/{r['version']}": ReadableVersion(r["release"], r["version"], r)
            for r in payload.get("releases", [])
        }
        return str(payload.get("user") or ""), versions

    async def catalog_rows(self, release: str, version: str, catalog: str, obsids: Sequence[int]) -> Any:
        """The catalog rows of ``obsids`` as one Arrow table, sorted by obsid.

        Asked in Parquet (types and column metadata survive) in batches of :data:`OBSIDS_PER_REQUEST`;
        obsids the version does not hold are simply absent from the table.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = []
        ordered = sorted({int(o) for o in obsids})
        for start in range(0, len(ordered), OBSIDS_PER_REQUEST):
            batch = ordered[start : start + OBSIDS_PER_REQUEST]
            params = {
                "catalog": catalog,
                "obsid": ",".join(str(o) for o in batch),
                "limit": str(len(batch)),
                "sort": "obsid",
                "format": "parquet",
                "history": "0",  # the import's own fetch, not a query of the user's
            }
            response = await self.get(f"api/{release}/{version}/search", params)
            if response.status != 200:
                raise ArchiveError(response.status, response.error_message())
            tables.append(pq.read_table(io.BytesIO(response.body)))
        if not tables:
            return pa.table({})
        return pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
