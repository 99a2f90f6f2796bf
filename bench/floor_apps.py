"""The no-op apps `floor_bench.py` serves: what a server and a framework cost alone."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

_BODY = b'{"status":"ok"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"15")]


async def raw(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A bare ASGI app: answers every HTTP request with a fixed JSON body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})


fastapi_app = FastAPI()


@fastapi_app.get("/health/live")
async def live() -> dict[str, str]:
    """A route that does nothing."""
    return {"status": "ok"}
