"""db.HEAD is Alembic's head, and upgrade() skips Alembic only for a database exactly there."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from sharedfs_api import db


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", os.path.join(os.path.dirname(db.__file__), "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _tables(url: str) -> set:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_head_is_the_newest_migration():
    assert ScriptDirectory.from_config(_config("sqlite://")).get_heads() == [db.HEAD]


def test_upgrade_skips_only_a_database_at_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    assert not db.at_head(url)
    assert not (tmp_path / "api.db").exists()  # asking did not make the file
    db.upgrade(url)
    assert db.at_head(url)
    assert "identity_grants" in _tables(url)
    command.downgrade(_config(url), "0005")  # an older schema: upgrade() must run the migration
    assert not db.at_head(url)
    assert "identity_grants" not in _tables(url)
    db.upgrade(url)
    assert db.at_head(url)
    assert "identity_grants" in _tables(url)


def test_an_empty_database_is_not_at_head(tmp_path):
    (tmp_path / "empty.db").touch()
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert not db.at_head(url)
    db.upgrade(url)
    assert db.at_head(url) and "filesystems" in _tables(url)
