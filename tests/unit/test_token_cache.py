"""The token cache: after a change one read of every token serves the fleet, a newer token is still found, and a revocation is refused at once."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from sharedfs_api import db
from sharedfs_api.auth import TokenCache, revoke_token, store_token
from sharedfs_api.errors import Unauthorized


@pytest.fixture
def world(tmp_path):
    url = f"sqlite:///{tmp_path / 'api.db'}"
    db.upgrade(url)
    engine = db.make_engine(url)
    queries = []
    event.listen(engine, "before_cursor_execute", lambda *a: a[2].startswith("SELECT") and queries.append(a[2]))
    return db.make_sessions(engine), queries


def test_one_read_of_every_token_serves_the_fleet_after_a_change(world):
    sessions, queries = world
    tokens = [store_token(sessions, "instance", "p1", None) for _ in range(50)]
    generation = [0]
    cache = TokenCache(sessions, generation=lambda: generation[0])
    queries.clear()
    assert {cache.resolve(t).role for t in tokens} == {"instance"}
    assert len(queries) == 1  # fifty agents, one query
    assert all(cache.cached(t) is not None for t in tokens)  # on the loop from now on, no thread

    late = store_token(sessions, "admin", None, None)  # made after the read, no change signalled
    assert cache.cached(late) is None  # not remembered: the caller goes to a thread
    assert cache.resolve(late).role == "admin"  # read on its own
    assert len(queries) == 2

    assert revoke_token(sessions, _id(tokens[0]))
    generation[0] += 1  # the revocation's change
    queries.clear()
    with pytest.raises(Unauthorized):
        cache.resolve(tokens[0])
    assert cache.resolve(tokens[1]).role == "instance"
    assert len(queries) <= 2  # the bulk read again, and at most the refused one on its own


def test_without_a_generation_nothing_is_remembered(world):
    sessions, queries = world
    token = store_token(sessions, "instance", "p1", None)
    cache = TokenCache(sessions)
    queries.clear()
    cache.resolve(token)
    cache.resolve(token)
    assert len(queries) == 2 and cache.cached(token) is None


def _id(token: str) -> str:
    from sharedfs_api.auth import hash_token

    return hash_token(token)[:16]
