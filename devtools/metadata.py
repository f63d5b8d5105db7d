"""Nova's metadata service on loopback: a static meta_data.json a guest test changes (MetadataServer,
for the nova-shares source), and one that makes vendor_data2.json as Nova's DynamicJSON provider
does (MetadataService, for enrollment)."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Dict, Optional

import requests

__all__ = ["MetadataServer", "MetadataService", "dynamic_json_body"]

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


def dynamic_json_body(project: str, instance: str, hostname: Optional[str] = None) -> dict:
    """The body Nova POSTs to each dynamic target (nova/api/metadata/vendordata_dynamic.py)."""
    return {"project-id": project, "instance-id": instance, "image-id": "cirros-0.6.2", "user-data": None,
            "hostname": hostname or instance, "metadata": {}, "boot-roles": "member,reader"}  # fmt: skip


class MetadataService:
    """Serves one instance's openstack/latest/meta_data.json and vendor_data2.json. Like Nova's, the
    latter is made on each request: a POST to every target (`name -> URL`) with the DynamicJSON body
    and the target's X-Auth-Token, each answer under its target's name ({} when a target fails)."""

    def __init__(self, project: str, instance: str, targets: Dict[str, str], token: Optional[str]) -> None:
        self.project, self.instance, self.targets, self.token = project, instance, targets, token
        self.answers: list = []  # (target, status) of each POST, for tests
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                document = service.document(self.path)
                body = json.dumps(document).encode() if document is not None else b"Not Found"
                self.send_response(200 if document is not None else 404)
                self.send_header("Content-Type", "application/json" if document is not None else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> MetadataService:
        self.thread.start()
        return self

    def document(self, path: str):
        if path == "/openstack/latest/meta_data.json":
            return {"uuid": self.instance, "project_id": self.project, "name": self.instance}
        if path == "/openstack/latest/vendor_data2.json":
            return self.vendor_data2()
        return None

    def vendor_data2(self) -> dict:
        headers = {"Accept": "application/json", "User-Agent": "openstack-nova-vendordata"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        document = {}
        for name, url in self.targets.items():
            answer = requests.post(url, json=dynamic_json_body(self.project, self.instance), headers=headers,
                                   timeout=5)  # fmt: skip
            self.answers.append((name, answer.status_code))
            document[name] = answer.json() if answer.status_code == 200 else {}
        return document

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
