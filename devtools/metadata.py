"""A Nova metadata service on loopback: meta_data.json, and vendor_data2.json made as Nova's DynamicJSON provider makes it."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Dict, Optional

import requests


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
