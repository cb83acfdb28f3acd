"""The fleet benchmark's baseline server: one plain HTTP PUT of a whole body, nothing else.

`python -m benchmarks.plain_put_server --port P --dir D` serves `PUT /sink` on 127.0.0.1 with the
hub's own stack and settings (FastAPI on uvicorn, the same keep-alive and header limits as
`roadloop hub serve`): the body is streamed into a temp file under D, fsynced, then dropped,
exactly as the hub spools a request body. Against it, the bridge's checked, chunked upload to
the real hub shows what the protocol costs over the plainest upload of the same bytes.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from fastapi import FastAPI, Request

__all__ = ["PATH", "make_app"]

PATH = "/sink"


def make_app(directory: Path) -> FastAPI:
    # (FastAPI resolves the handlers' annotations in this module's globals: Request is imported above)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    def health() -> dict[str, bool]:
        return {"ok": True}

    @app.put(PATH)
    async def sink(request: Request) -> dict[str, int]:
        fd, name = tempfile.mkstemp(dir=directory, suffix=".body")
        size = 0
        try:
            with os.fdopen(fd, "wb") as f:
                async for block in request.stream():
                    f.write(block)
                    size += len(block)
                f.flush()
                os.fsync(f.fileno())
        finally:
            os.unlink(name)
        return {"bytes": size}

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m benchmarks.plain_put_server", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", type=Path, required=True, help="folder for the spooled bodies")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    uvicorn.run(
        make_app(args.dir),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 << 10,
    )


if __name__ == "__main__":
    main()
