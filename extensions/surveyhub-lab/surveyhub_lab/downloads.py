"""The "Download table" action: the archive's answer streamed to the browser as it arrives, never held whole.

A search result can hold a million rows (hundreds of MB as CSV). The archive already writes CSV, VOTable
and Parquet as a stream (``surveyhub.archive.formats``); here each chunk it sends is written on to the
browser and flushed before the next one is read (tornado waits on the coroutine the streaming callback
returns), so the user's server holds one chunk at a time whatever the size of the table, and a slow
browser slows the archive down rather than filling the server's memory.

The whole result is downloaded, not the panel's page: the exact total is asked first (a ``limit=0``
search), checked against the download limit, and then exactly that many rows are asked for.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from tornado import httputil
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from surveyhub_lab.archive_client import PASSED_HEADERS, ArchiveClient, ArchiveError

#: The table formats the panel offers, with the archive's name for each.
DOWNLOAD_FORMATS = {"csv": "csv", "votable": "votable", "parquet": "parquet"}
#: The file name extension of each (the archive's own, see ``formats.extension``).
EXTENSIONS = {"csv": "csv", "votable": "vot", "parquet": "parquet"}
#: The most error body kept when the archive refuses (its errors are short JSON).
MAX_ERROR_BYTES = 64 * 1024
#: A download may take long (a million rows through a slow link); the archive's own query timeout applies.
DOWNLOAD_TIMEOUT_S = 3600.0
#: No limit on the body's size: it is streamed, not buffered.
MAX_BODY_BYTES = 1 << 44


@dataclass
class StreamedAnswer:
    """How an archive answer ended: its status and headers, and the body only when it was an error."""

    status: int
    headers: dict[str, str]
    error_body: bytes = b""
    bytes_sent: int = 0
    broken: str | None = None  # why the body stopped part-way (the archive or the browser went away)


Sink = Callable[[int, dict[str, str], bytes], Awaitable[None]]


async def stream_get(
    archive: ArchiveClient,
    path: str,
    params: Iterable[tuple[str, str]] | Mapping[str, str],
    sink: Sink,
) -> StreamedAnswer:
    """GET ``path`` of the archive with the user's token, handing each chunk of a 200 body to ``sink``.

    ``sink(status, headers, chunk)`` is awaited before the next chunk is read. Any other status keeps its
    (short) body in the answer instead, so the caller can pass the archive's own words on.
    """
    answer = StreamedAnswer(0, {})
    parsed = httputil.HTTPHeaders()

    def on_header(line: str) -> None:
        if answer.status == 0 or line.startswith("HTTP/"):
            if line.startswith("HTTP/"):  # a new response (after a redirect): start again
                answer.status = httputil.parse_response_start_line(line.strip()).code
                parsed.clear()
            return
        if line.strip():
            parsed.parse_line(line)

    def kept() -> dict[str, str]:
        return {name: parsed[name] for name in PASSED_HEADERS if name in parsed}

    async def on_chunk(chunk: bytes) -> None:
        if answer.status != 200:
            if len(answer.error_body) < MAX_ERROR_BYTES:
                answer.error_body += chunk[: MAX_ERROR_BYTES - len(answer.error_body)]
            return
        answer.headers = answer.headers or kept()
        answer.bytes_sent += len(chunk)
        await sink(answer.status, answer.headers, chunk)

    headers = {"Authorization": f"token {archive.token}"} if archive.token else {}
    request = HTTPRequest(
        archive.url(path, params),
        method="GET",
        headers=headers,
        request_timeout=DOWNLOAD_TIMEOUT_S,
        header_callback=on_header,
        streaming_callback=on_chunk,
    )
    # tornado's own client by name: only it awaits a coroutine streaming_callback (the back-pressure this
    # relies on), and JupyterHub switches the process-wide default to curl wherever pycurl is installed
    client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=MAX_BODY_BYTES)
    try:
        response = await client.fetch(request, raise_error=False)
    except (OSError, HTTPClientError) as exc:
        raise ArchiveError(502, f"the archive service at {archive.base_url} did not answer: {exc}") from exc
    finally:
        client.close()
    if response.code == 599:
        if answer.bytes_sent == 0:
            raise ArchiveError(
                502, f"the archive service at {archive.base_url} did not answer: {response.error}"
            )
        answer.broken = str(response.error)
    answer.status = answer.status or response.code
    answer.headers = answer.headers or kept()
    return answer


def download_filename(release: str, version: str, catalog: str, fmt: str, total: int) -> str:
    """``DEMO-v1-lrs-1234rows-20261201T205700Z.csv``: what, how much and when, so downloads do not collide."""
    when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return f"{release}-{version}-{catalog}-{total}rows-{when}.{EXTENSIONS[fmt]}"
