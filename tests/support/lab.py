"""Run code inside a user's real Jupyter server, as a notebook would: a kernel over the Jupyter protocol.

Tests of isolation must act from inside the server (as the user's account, with the environment the hub
gave it), not from the test process, which is root. This starts a kernel through the server's REST API
behind the hub's proxy and sends ``execute_request`` messages on its websocket, collecting what the cell
prints and whether it raised.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


class CellError(AssertionError):
    """A cell raised: carries the exception name, value and what it printed before."""


@dataclass
class CellResult:
    """What a cell printed and, if it raised, the exception's name and message."""

    stdout: str = ""
    error: tuple[str, str] | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Kernel:
    """A kernel in ``username``'s server, reached through the hub at ``hub_url`` with ``token``."""

    hub_url: str
    username: str
    token: str
    kernel_id: str = ""

    @property
    def api(self) -> str:
        return f"{self.hub_url}user/{self.username}/api"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def start(self) -> Kernel:
        response = requests.post(f"{self.api}/kernels", headers=self._headers(), json={}, timeout=60)
        response.raise_for_status()
        self.kernel_id = response.json()["id"]
        return self

    def shutdown(self) -> None:
        if self.kernel_id:
            requests.delete(f"{self.api}/kernels/{self.kernel_id}", headers=self._headers(), timeout=30)

    def __enter__(self) -> Kernel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    async def _execute(self, code: str, timeout: float) -> CellResult:
        ws_url = self.api.replace("http://", "ws://", 1) + f"/kernels/{self.kernel_id}/channels"
        connection = await websocket_connect(HTTPRequest(ws_url, headers=self._headers()))
        msg_id = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": self.username,
                "session": uuid.uuid4().hex,
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {"code": code, "silent": False, "store_history": False, "allow_stdin": False},
            "channel": "shell",
            "buffers": [],
        }
        await connection.write_message(json.dumps(message))
        result = CellResult()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await connection.read_message()
                    if raw is None:
                        raise CellError("the kernel's websocket closed")
                    reply = json.loads(raw)
                    if reply.get("parent_header", {}).get("msg_id") != msg_id:
                        continue
                    kind = reply["msg_type"]
                    content = reply["content"]
                    if kind == "stream":
                        result.stdout += content["text"]
                    elif kind == "error":
                        result.error = (content["ename"], content["evalue"])
                    elif kind in ("execute_result", "display_data"):
                        result.outputs.append(content["data"])
                    elif kind == "status" and content["execution_state"] == "idle":
                        return result
        finally:
            connection.close()

    def run(self, code: str, timeout: float = 120) -> CellResult:
        """Execute one cell; returns what it printed (and its error, if any)."""
        return asyncio.run(self._execute(code, timeout))

    def raised(self, code: str, timeout: float = 120) -> str:
        """Execute one cell; the name of the exception it raised, or '' if it did not raise."""
        result = self.run(code, timeout)
        return result.error[0] if result.error else ""

    def check(self, code: str, timeout: float = 120) -> str:
        """Execute one cell that must not raise; returns its printed output."""
        result = self.run(code, timeout)
        if result.error:
            raise CellError(f"{result.error[0]}: {result.error[1]}\nprinted: {result.stdout}")
        return result.stdout
