"""The agent wheel index: a PEP 503 simple index of sharedfs_agent-*.whl from serve --agent-wheels, public."""

from __future__ import annotations

import hashlib
import os
import re
from typing import Dict, Optional

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse

from ..errors import NotFound

_WHEEL = re.compile(r"sharedfs_agent-[0-9A-Za-z.+_]+-py3-none-any\.whl")


def agent_index(app: FastAPI, directory: Optional[str]) -> None:
    """A PEP 503 simple index of the agent's wheel, so instances install it from this server
    (`pip install --index-url URL/agent/simple/ sharedfs-agent`) and need no other package index.
    Public: a wheel holds no secret."""

    def wheels() -> Dict[str, str]:
        if not directory or not os.path.isdir(directory):
            raise NotFound("this server serves no agent wheel (serve --agent-wheels DIR)")
        found = {}
        for name in sorted(os.listdir(directory)):
            if _WHEEL.fullmatch(name):
                with open(os.path.join(directory, name), "rb") as f:
                    found[name] = hashlib.file_digest(f, "sha256").hexdigest()
        return found

    def page(title: str, links: str) -> HTMLResponse:
        return HTMLResponse(f"<!DOCTYPE html><html><head><title>{title}</title></head><body>{links}</body></html>")

    @app.get("/agent/simple/", include_in_schema=False)
    def simple_root():
        wheels()
        return page("sharedfs agent", '<a href="sharedfs-agent/">sharedfs-agent</a>')

    @app.get("/agent/simple/sharedfs-agent/", include_in_schema=False)
    def simple_project():
        links = "".join(f'<a href="../../files/{n}#sha256={h}">{n}</a><br>' for n, h in wheels().items())
        return page("sharedfs-agent", links)

    @app.get("/agent/files/{filename}", include_in_schema=False)
    def wheel_file(filename: str):
        if filename not in wheels():
            raise NotFound(f"no agent wheel {filename!r}")
        return FileResponse(os.path.join(directory, filename), media_type="application/octet-stream")
