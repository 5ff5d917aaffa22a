"""The conversation store on real SQLite files."""
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

from bot.store import MIGRATIONS, SCHEMA_VERSION, Exchange, Store
from scripts.export_pairs import select_pairs
from tests.conftest import REPO
from tests.fakes import read_exchanges

HOSTILE = [
    "'; DROP TABLE exchanges; --",
    "NUL\x00inside\x00",
    "lone \ud800 surrogate \udfff",
    "가" * 100_000,
    "😀\u200b\u202e reversed",
    "",
]


def ex(user="u1", text="안녕", reply="반가워요.", channel="c1", platform="discord", raw=None, **kw) -> Exchange:
    return Exchange(platform=platform, user_id=user, text=text, raw=text if raw is None else raw, reply=reply,
                    outcome="replied", channel=channel, **kw)


async def test_500_concurrent_exchanges_all_stored(tmp_path):
    store = await Store(tmp_path / "db.sqlite3").open()

    async def talker(n):
        for i in range(10):
            await store.log_exchange(ex(user=f"user{n}", text=f"{n}-{i}"))
            await asyncio.sleep(0)

    await asyncio.gather(*(talker(n) for n in range(50)))
    await store.close()
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("SELECT count(*), count(DISTINCT text) FROM exchanges").fetchone() == (500, 500)
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_hostile_texts_round_trip_exactly(tmp_path):
    async with Store(tmp_path / "db.sqlite3") as store:
        ids = [await (await store.log_exchange(ex(text=t[:10], raw=t, reply=t[:50]))) for t in HOSTILE]
        rows = read_exchanges(store.path, f"id IN ({','.join('?' * len(ids))})", tuple(ids))
    assert [r["raw"] for r in rows] == HOSTILE
    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM exchanges").fetchone()[0] == len(HOSTILE)


async def test_migration_from_schema_1_keeps_rows(tmp_path):
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(MIGRATIONS[0] + "\nPRAGMA user_version = 1;")
        db.execute("INSERT INTO exchanges (platform, user_id, text, raw, reply, outcome, created_at)"
                   " VALUES ('slack', 'U1', '옛날 메시지', x'6f6c64', '옛날 답', 'replied', '2020-01-01T00:00:00')")
        db.execute("INSERT INTO feedback (exchange_id, user_id, kind, answer, created_at)"
                   " VALUES (1, 'U1', 'teach', '배운 답', '2020-01-01T00:00:01')")
    async with Store(path) as store:
        rows = read_exchanges(store.path)
        assert rows[0]["text"] == "옛날 메시지" and rows[0]["reply_message_id"] is None
        assert await store.first_delivery("evt-1")
        taught = await store.taught_pairs()  # taught before reviews existed: pending review now
        assert [(p.question, p.answer, p.status) for p in taught] == [("옛날 메시지", "배운 답", "pending")]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4


async def test_feedback_forget_and_retention(tmp_path):
    async with Store(tmp_path / "db.sqlite3") as store:
        await store.log_exchange(ex(user="alice", text="질문1", reply_message_id="m1"))
        await store.log_exchange(ex(user="alice", text="질문2", channel="c2"))
        await store.log_exchange(ex(user="bob", text="밥 질문", reply_message_id="m3"))
        assert await store.mark_reply("discord", "m1", "alice", "good")
        assert not await store.mark_reply("discord", "m3", "alice", "good")  # not alice's reply
        assert await store.mark_last("discord", "bob", "c1", "teach", "더 좋은 답")
        assert await store.mark_last("discord", "alice", "c2", "bad")
        assert not await store.mark_last("discord", "carol", None, "good")
        assert await store.forget_user("discord", "alice") == 2
        rows = read_exchanges(store.path)
        assert [r["user_id"] for r in rows] == ["bob"]
        assert await store.training_rows() == [("밥 질문", "반가워요.", "더 좋은 답", "teach")]
        await store.db.execute("UPDATE exchanges SET created_at = '2000-01-01T00:00:00'")
        await store.db.commit()
        assert await store.prune(30) == 1
        assert read_exchanges(store.path) == []


async def test_processed_events_dedupe_concurrent_deliveries(tmp_path):
    async with Store(tmp_path / "db.sqlite3") as store:
        firsts = await asyncio.gather(*(store.first_delivery("Ev123") for _ in range(20)))
        assert firsts.count(True) == 1
    async with Store(tmp_path / "db.sqlite3") as store:  # survives a restart
        assert not await store.first_delivery("Ev123")


def test_kill_9_loses_nothing_committed(tmp_path):
    path = tmp_path / "crash.sqlite3"
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from bot.store import Exchange, Store
        async def main():
            store = await Store({str(path)!r}).open()
            futs = [await store.log_exchange(Exchange("terminal", "u", f"m{{i}}", f"m{{i}}", "r", "replied"))
                    for i in range(200)]
            await asyncio.gather(*futs)
            print("committed", flush=True)
            while True:
                await store.log_exchange(Exchange("terminal", "u", "more", "more", "r", "replied"))
                await asyncio.sleep(0.001)
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"committed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        texts = {r[0] for r in db.execute("SELECT text FROM exchanges")}
    assert {f"m{i}" for i in range(200)} <= texts


def test_export_selects_taught_and_good_pairs():
    rows = [
        ("안녕", "반가워요.", None, "good"),
        ("배고파", "밥 먹어요.", "맛있는 거 드세요.", "teach"),
        ("싫어", "나도.", None, "bad"),
        ("싫어", "나도.", None, "good"),          # also marked bad: excluded
        ("안녕", "반가워요.", None, "good"),      # duplicate
        ("  ", "빈 질문", None, "good"),          # empty
        ("@everyone 모여", "네.", None, "good"),  # mention
        ("링크", "https://example.com 보세요", None, "good"),
        ("긴 질문", "가" * 300, None, "good"),
    ]
    pairs, summary = select_pairs(rows)
    assert [(p.q, p.a) for p in pairs] == [("안녕", "반가워요."), ("배고파", "맛있는 거 드세요.")]
    assert summary.kept == 2
    assert dict(summary.dropped) == {"marked bad": 1, "good and bad": 1, "duplicate": 1, "empty": 1,
                                     "mention or link": 2, "too long": 1}
