"""Shared fixtures: a tiny model really trained on real ChatbotData pairs (once per test session)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "data" / "ChatbotData.csv"

TINY = dict(vocab_size=4000, min_count=1, embedding_dim=32, units=96, dropout=0.0, attention=True,
            epochs=120, batch_size=16, patience=120, learning_rate=1e-2,
            selector_members=1)  # the two-member selector is tested in tests/core_model/test_selector.py


def corpus_pairs(n: int, start: int = 0):
    """`n` pairs with distinct questions and answers from the shipped ChatbotData copy."""
    from core_model.data import read_pairs

    seen_q, seen_a, out = set(), set(), []
    for p in read_pairs(CORPUS)[start:]:
        if p.q not in seen_q and p.a not in seen_a:
            seen_q.add(p.q)
            seen_a.add(p.a)
            out.append(p)
        if len(out) == n:
            break
    return out


@pytest.fixture(scope="session")
def tiny_pairs():
    return corpus_pairs(50)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_pairs) -> Path:
    """A real seq2seq model trained until it knows its 50 pairs by heart."""
    from core_model.train import TrainConfig, train

    out = tmp_path_factory.mktemp("models") / "tiny"
    train(tiny_pairs, out, TrainConfig(**TINY), verbose=0)
    return out


@pytest.fixture(scope="session")
def tiny_responder(tiny_model_dir):
    from core_model.responder import Responder

    return Responder(tiny_model_dir)


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL for the session (tests/postgres.py); the tests using it skip saying why
    when no server can be started."""
    from tests.postgres import Postgres

    server = Postgres()
    why = server.why_unavailable()
    if why and os.environ.get("TEST_REQUIRE_POSTGRES"):
        pytest.fail(f"TEST_REQUIRE_POSTGRES is set but {why}")
    if why:
        pytest.skip(why)
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def postgres_url(postgres_server) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL."""
    return await postgres_server.database()


@pytest.fixture(params=["sqlite", "postgres"])
async def db_target(request, tmp_path) -> str:
    """Where a store lives, once per back-end: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "db.sqlite3")
    return await request.getfixturevalue("postgres_server").database()
