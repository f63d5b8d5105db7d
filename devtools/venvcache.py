"""Python venvs for the OpenStack services the tests run (Keystone, Manila), from PyPI, cached per pinned requirements file.

A venv is made once per requirements file and interpreter version under SHAREDFS_TEST_CACHE (default
/var/cache/sharedfs-tests), so later runs start the service in seconds. OpenStack's current releases
need Python >= 3.11: the venv is made with this interpreter if it is new enough, else python3.11+.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .cache import CACHE, build_once

__all__ = ["cached_venv", "python", "service_env", "wsgi_server"]


def python() -> str:
    if sys.version_info >= (3, 11):
        return sys.executable
    for name in ("python3.13", "python3.12", "python3.11"):
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("OpenStack's services need Python >= 3.11 and none is installed")


def cached_venv(name: str, requirements: Path) -> Path:
    """CACHE/<name>-<hash of the requirements and the Python version>, made first if needed."""
    interpreter = python()
    version = subprocess.run([interpreter, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
    key = hashlib.sha256(requirements.read_bytes() + version.encode()).hexdigest()[:12]
    path = CACHE / f"{name}-{key}"

    def build(building: Path) -> None:
        subprocess.run([interpreter, "-m", "venv", str(building)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(building / "bin/pip"), "install", "-q", "--disable-pip-version-check", "-r",
                        str(requirements)], check=True, capture_output=True, timeout=1800)  # fmt: skip
        # A venv's scripts name their interpreter by absolute path; the move needs them rewritten.
        for script in (building / "bin").iterdir():
            if script.is_file() and not script.is_symlink():
                data = script.read_bytes()
                if data.startswith(b"#!") and str(building).encode() in data[:400]:
                    script.write_bytes(data.replace(str(building).encode(), str(path).encode(), 1))
        cfg = building / "pyvenv.cfg"
        cfg.write_text(cfg.read_text().replace(str(building), str(path)))

    return build_once(path, build, requirements.read_text())


def service_env(**extra: str) -> dict:
    """The environment for a program of a cached venv: this one's without PYTHONPYCACHEPREFIX. pip
    compiled the venv's modules beside their sources when it installed them; the tests' bytecode
    cache (tests/conftest.py, for the project's own venv, installed without) would hide that
    bytecode and make every first start compile Manila or Keystone from source again: minutes of
    CPU for Manila's three services starting together, past its start's deadline."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPYCACHEPREFIX"}
    return {**env, **extra}


def wsgi_server(application: str) -> str:
    """A Python program serving the WSGI application that the statements `application` bind, on the
    port given as its first argument, with a threaded wsgiref server (enough for a test suite, and
    no compiler needed, as uwsgi would); the service parses the rest of the command line itself."""
    return f"""
import sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
port = int(sys.argv.pop(1))
{application}
make_server("127.0.0.1", port, application, server_class=Server, handler_class=Quiet).serve_forever()
"""
