"""FastAPI app for hangscope's repro lab, served by Debian's uvicorn:

    /usr/bin/python3 -u -m uvicorn app:app --port P --log-level trace

Every log line (uvicorn's own and the app's) is one JSON object with `ts`, the
wall-clock time in seconds since the epoch with 6 decimals (Python's
time.time(), the same CLOCK_REALTIME tcpdump stamps packets with), so the
server log can be lined up with the capture and the client log.

uvicorn 0.17.6 with the h11 protocol: keep-alive timeout 5 s (--timeout-keep-alive),
"HTTP connection made/lost" trace lines carry the client's address and port.

Environment:
  LAB_FILES_CONNECTION_CLOSE=1  /files answers with `Connection: close`
                                (scenario b: h11 then closes the connection after the response).
"""

import asyncio
import json
import logging
import os
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line; `ts` from record.created (time.time())."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 6),
            "logger": record.name,
            "level": record.levelname,
        }
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        else:
            out["msg"] = record.getMessage()
        return json.dumps(out)


# uvicorn configures its loggers before it imports the app; swap the formatter
# of every handler it installed so its own lines are JSON with timestamps too.
_formatter = JsonLineFormatter()
for _name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
    for _h in logging.getLogger(_name).handlers:
        _h.setFormatter(_formatter)

log = logging.getLogger("lab.app")
log.setLevel(logging.INFO)
log.propagate = False
_h = logging.StreamHandler()
_h.setFormatter(_formatter)
log.addHandler(_h)


def event(name: str, **fields) -> None:
    log.info(name, extra={"fields": {"event": name, **fields}})


app = FastAPI()
FILES_CONNECTION_CLOSE = os.environ.get("LAB_FILES_CONNECTION_CLOSE") == "1"


def client_port(request: Request):
    return request.client.port if request.client else None


@app.get("/files/{file_id}")
async def get_file(file_id: str, request: Request, detail: str = "full"):
    event("files", clientPort=client_port(request), id=file_id, detail=detail)
    if file_id == "missing":
        return JSONResponse({"error": "not found", "id": file_id}, status_code=404)
    headers = {"Connection": "close"} if FILES_CONNECTION_CLOSE else {}
    body = {"id": file_id, "name": f"{file_id}.bin", "size": 4096, "detail": detail}
    return JSONResponse(body, headers=headers)


async def exec_seconds(request: Request) -> float:
    """Seconds to sleep: `?seconds=` wins, else JSON body {"seconds": N}, else 8."""
    q = request.query_params.get("seconds")
    if q is not None:
        return float(q)
    raw = await request.body()
    if raw:
        try:
            return float(json.loads(raw).get("seconds", 8))
        except (ValueError, AttributeError):
            pass
    return 8.0


@app.post("/exec")
async def post_exec(request: Request):
    port = client_port(request)
    seconds = await exec_seconds(request)
    heartbeat = request.query_params.get("heartbeat") == "1"
    event("exec-start", clientPort=port, seconds=seconds, heartbeat=heartbeat)
    started = time.time()

    if heartbeat:
        async def body():
            # Headers go out first (StreamingResponse), then one space per
            # second: every byte resets the client's socket idle timer.
            # Leading whitespace is valid before a JSON text (RFC 8259 section 2).
            sent = 0
            deadline = started + seconds
            while time.time() < deadline:
                await asyncio.sleep(min(1.0, max(0.0, deadline - time.time())))
                if time.time() < deadline:
                    sent += 1
                    yield b" "
            gone = await request.is_disconnected()
            event("exec-done", clientPort=port, seconds=seconds, heartbeat=True,
                  heartbeatBytes=sent, clientGone=gone, responseWritten=not gone,
                  elapsed=round(time.time() - started, 6))
            yield json.dumps({"ok": True, "seconds": seconds}).encode()

        return StreamingResponse(body(), media_type="application/json")

    await asyncio.sleep(seconds)
    # uvicorn's h11 protocol drops writes silently once the connection is lost
    # (RequestResponseCycle.send returns when `disconnected`), so "the client
    # was gone" is exactly "the response was not written".
    gone = await request.is_disconnected()
    event("exec-done", clientPort=port, seconds=seconds, heartbeat=False,
          clientGone=gone, responseWritten=not gone,
          elapsed=round(time.time() - started, 6))
    return {"ok": True, "seconds": seconds}


@app.get("/slow")
async def get_slow(request: Request, chunks: int = 20, interval: float = 0.5):
    """A slow chunked body: `chunks` lines, one every `interval` seconds."""
    port = client_port(request)
    event("slow-start", clientPort=port, chunks=chunks, interval=interval)

    async def body():
        for i in range(chunks):
            event("slow-chunk", clientPort=port, index=i)
            yield f"chunk {i:04d} {'x' * 48}\n".encode()
            await asyncio.sleep(interval)
        event("slow-done", clientPort=port)

    return StreamingResponse(body(), media_type="text/plain")


@app.post("/upload")
async def post_upload(request: Request):
    port = client_port(request)
    event("upload-start", clientPort=port,
          contentLength=request.headers.get("content-length"))
    n = 0
    async for chunk in request.stream():
        n += len(chunk)
    event("upload-done", clientPort=port, bytes=n)
    return {"ok": True, "bytes": n}


@app.get("/block")
async def get_block(request: Request, slices: int = 20, ms: float = 20.0):
    """Blocking work in an async handler (time.sleep instead of await: the
    event loop stalls), in `slices` slices of `ms` milliseconds with a yield
    between them. Scenario m: while a slice runs, a keep-alive timer that fell
    due runs only after it, and closes its socket with a request that arrived
    meanwhile still unread (the kernel then sends RST, not FIN)."""
    port = client_port(request)
    event("block-start", clientPort=port, slices=slices, ms=ms)
    for i in range(slices):
        t0 = time.time()
        time.sleep(ms / 1000.0)
        event("block-slice", clientPort=port, index=i, start=round(t0, 6))
        await asyncio.sleep(0)
    event("block-done", clientPort=port)
    return {"ok": True, "slices": slices, "ms": ms}
