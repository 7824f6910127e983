"""A hard cap on the requests a server holds at once: the rest get HTTP 429 straight away.

MAX's own bounded queue (`--max-queue-size`) is a ZeroMQ high-water mark,
which the operating system's socket buffers stretch to tens of requests; this
cap counts requests in the API process instead (each POST from its arrival to
the end of its response, streamed or not, or the client's disconnect), so
that at most `limit` are decoding or waiting at any time.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

LIMIT_VARIABLE = "ZOO_SERVE_MAX_REQUESTS"


class AdmissionLimit:
    """ASGI middleware: POST requests beyond `limit` in progress are answered 429 at once."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int, detail: str = "") -> None:
        self.app = app
        self.limit = limit
        self.detail = detail
        self.active = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            await self._refuse(send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1

    async def _refuse(self, send: Send) -> None:
        message = f"Server is at capacity: {self.limit} requests in progress{self.detail}; retry later"
        body = json.dumps({"error": {"code": "429", "message": message, "param": "", "type": "rate_limit_error"}})
        headers = [(b"content-type", b"application/json"), (b"retry-after", b"1")]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})
