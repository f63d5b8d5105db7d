"""OpenStack services, each started once per test session: a real RabbitMQ and Manila (the real Keystone is in tests/conftest.py)."""

from __future__ import annotations

import os

import pytest

from devtools import rabbitmq
from devtools.rabbitmq import RabbitMQ
from tests.support import require


@pytest.fixture(scope="session")
def broker(workdir):
    require(os.geteuid() == 0, "rabbitmq-server runs as root here (private node, loopback only)")
    require(rabbitmq.installed(), "rabbitmq-server is not installed (run scripts/setup.sh)")
    server = RabbitMQ(workdir / "rabbitmq").start()
    yield server
    server.remove()


@pytest.fixture(scope="session")
def manila(broker, workdir):
    """A real Manila (API, scheduler, share service with the in-tree DummyDriver) on PostgreSQL, noauth."""
    from devtools.manila import Manila
    from devtools.postgres import Postgres

    database = Postgres(workdir / "manila-postgres").start()
    try:
        server = Manila(workdir / "manila", broker.url, database.create_database("manila")).start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        database.stop()
