"""A loopback stand-in for Nova's metadata service: serves one meta_data.json that a test changes at will."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Dict, Optional

__all__ = ["MetadataServer"]

META_PATH = "/openstack/latest/meta_data.json"
# A guest (which cannot reach the test's Python) asks for a change by POSTing a devices list here.
DEVICES_PATH = "/test/devices"


class MetadataServer:
    """`with MetadataServer(meta) as server:` — server.port on 127.0.0.1; server.meta is served;
    server.requests counts the meta_data.json reads."""

    def __init__(self, meta: Dict[str, Any]) -> None:
        self.meta = meta
        self.requests = 0
        self.httpd: Optional[http.server.ThreadingHTTPServer] = None

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return self.httpd.server_address[1]

    def __enter__(self) -> MetadataServer:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != META_PATH:
                    return self._send(404, b"not found")
                server.requests += 1
                self._send(200, json.dumps(server.meta).encode(), "application/json")

            def do_POST(self) -> None:
                if self.path != DEVICES_PATH:
                    return self._send(404, b"not found")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.meta = {**server.meta, "devices": json.loads(body)}
                self._send(200, b"ok")

            def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self.httpd is not None
        self.httpd.shutdown()
        self.httpd.server_close()
