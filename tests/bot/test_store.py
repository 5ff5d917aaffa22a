"""The conversation store on real SQLite files and a real PostgreSQL (`db_target`: once per back-end)."""
import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from bot.store import MIGRATIONS, SCHEMA_VERSION, Exchange, Store, decode_raw, is_postgres_url, make_store
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


async def fetch(target: str, sql: str) -> list[dict]:
    """Rows of a fixed query, read beside the store the way an operator would (sqlite3 or asyncpg)."""
    if is_postgres_url(target):
        import asyncpg
        con = await asyncpg.connect(target)
        try:
            return [dict(r) for r in await con.fetch(sql)]
        finally:
            await con.close()
    with sqlite3.connect(target) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql)]


async def execute(target: str, sql: str) -> None:
    if is_postgres_url(target):
        import asyncpg
        con = await asyncpg.connect(target)
        try:
            await con.execute(sql)
        finally:
            await con.close()
    else:
        with sqlite3.connect(target) as db:
            db.execute(sql)


def ex(user="u1", text="안녕", reply="반가워요.", channel="c1", platform="discord", raw=None, **kw) -> Exchange:
    return Exchange(platform=platform, user_id=user, text=text, raw=text if raw is None else raw, reply=reply,
                    outcome="replied", channel=channel, **kw)


async def test_500_concurrent_exchanges_all_stored(db_target):
    store = await make_store(db_target).open()

    async def talker(n):
        for i in range(10):
            await store.log_exchange(ex(user=f"user{n}", text=f"{n}-{i}"))
            await asyncio.sleep(0)

    await asyncio.gather(*(talker(n) for n in range(50)))
    await store.close()
    (counts,) = await fetch(db_target, "SELECT count(*) AS n, count(DISTINCT text) AS d FROM exchanges")
    assert (counts["n"], counts["d"]) == (500, 500)
    if not is_postgres_url(db_target):
        with sqlite3.connect(db_target) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_hostile_texts_round_trip_exactly(db_target):
    async with make_store(db_target) as store:
        ids = [await (await store.log_exchange(ex(text=t[:10], raw=t, reply=t[:50]))) for t in HOSTILE]
    rows = await fetch(db_target, f"SELECT id, raw, text FROM exchanges WHERE id IN ({','.join(map(str, ids))})"
                                  " ORDER BY id")
    assert [decode_raw(r["raw"]) for r in rows] == HOSTILE
    assert len(rows) == len(HOSTILE)


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
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6


async def test_feedback_forget_and_retention(db_target):
    async with make_store(db_target) as store:
        await store.log_exchange(ex(user="alice", text="질문1", reply_message_id="m1"))
        await store.log_exchange(ex(user="alice", text="질문2", channel="c2"))
        await store.log_exchange(ex(user="bob", text="밥 질문", reply_message_id="m3"))
        assert await store.mark_reply("discord", "m1", "alice", "good")
        assert not await store.mark_reply("discord", "m3", "alice", "good")  # not alice's reply
        assert await store.mark_last("discord", "bob", "c1", "teach", "더 좋은 답")
        assert await store.mark_last("discord", "alice", "c2", "bad")
        assert not await store.mark_last("discord", "carol", None, "good")
        assert await store.forget_user("discord", "alice") == 2
        rows = await fetch(db_target, "SELECT user_id FROM exchanges ORDER BY id")
        assert [r["user_id"] for r in rows] == ["bob"]
        assert await store.training_rows() == [("밥 질문", "반가워요.", "더 좋은 답", "teach")]
        await execute(db_target, "UPDATE exchanges SET created_at = '2000-01-01T00:00:00'")
        assert await store.prune(30) == 1
        assert await fetch(db_target, "SELECT * FROM exchanges") == []


async def test_processed_events_dedupe_concurrent_deliveries(db_target):
    async with make_store(db_target) as store:
        firsts = await asyncio.gather(*(store.first_delivery("Ev123") for _ in range(20)))
        assert firsts.count(True) == 1
    async with make_store(db_target) as store:  # survives a restart
        assert not await store.first_delivery("Ev123")


async def test_taught_pairs_review_and_outbox_round_trip(db_target):
    async with make_store(db_target) as store:
        await (await store.log_exchange(ex(user="bob", text="배고파", channel="c1")))
        assert await store.teach("discord", "carol", None, "답") is None  # nothing of carol's to teach on
        pair = await store.teach("discord", "bob", "c1", "밥 먹어요.")
        assert (pair.question, pair.answer, pair.status) == ("배고파", "밥 먹어요.", "pending")
        assert await store.review_taught([pair.id, 999], "approved", "admin") == 1
        assert [p.status for p in await store.taught_pairs()] == ["approved"]
        first = await store.outbox_accept(platform="slack", user_id="U1", text="질문\x00", raw="질문\x00\ud800",
                                          workspace="T1", channel="C1", thread="1.0", reply_to="1.0")
        second = await store.outbox_accept(platform="slack", user_id="U2", text="두번째", raw=None,
                                           workspace="T1", channel="C1", thread=None, reply_to="2.0")
        exchange_id = await store.outbox_reply(first, ex(platform="slack", user="U1", text="질문", reply="답"))
        await store.outbox_sent(first, "1.5")
        await store.outbox_attempt_failed(second, "service_unavailable")
        (row,) = await store.outbox_pending()
        assert (row.id, row.reply, row.attempts, row.raw) == (second, None, 1, None)
        await store.outbox_attempt_failed(second, "channel_not_found", final="failed")
        assert await store.outbox_pending() == []
        third = await store.outbox_accept(platform="slack", user_id="U3", text="늦은", raw="늦은", workspace=None,
                                          channel="C2", thread=None, reply_to=None)
        (owed,) = await store.outbox_pending()
        assert (owed.id, owed.raw) == (third, "늦은")
        assert await store.outbox_expire(-1) == {"slack": 1}
        rows = await fetch(db_target, "SELECT id, status, message_id, last_error FROM outbox ORDER BY id")
        assert [(r["status"], r["message_id"], r["last_error"]) for r in rows] == [
            ("sent", "1.5", None), ("failed", None, "channel_not_found"), ("expired", None, None)]
        (sent,) = await fetch(db_target, f"SELECT reply_message_id FROM exchanges WHERE id = {exchange_id}")
        assert sent["reply_message_id"] == "1.5"


async def test_installations_and_oauth_states(db_target):
    """Slack OAuth's records (schema 5): one row per workspace, replaced on reinstall, found by workspace,
    deleted on uninstall; a state is accepted once and only while alive; tokens stay out of repr."""
    from bot.installations import BotInstall

    a = BotInstall("slack", "T1", "xoxb-a-1", team_name="A", bot_id="BA", bot_user_id="UA", bot_scopes="chat:write",
                   installer_user_id="U1", installed_at=100.0)
    grid = BotInstall("slack", "T2", "xoxb-grid", enterprise_id="E1", bot_user_id="UG", installed_at=50.0,
                      bot_refresh_token="xoxe-1-refresh", bot_token_expires_at=2_000_000_000)
    async with make_store(db_target) as store:
        assert await store.install_find("slack", "", "T1") is None
        await store.install_save(a)
        await store.install_save(grid)
        assert await store.install_find("slack", "", "T1") == a
        await store.install_save(BotInstall("slack", "T1", "xoxb-a-2", bot_user_id="UA", installed_at=200.0))
        again = await store.install_find_team("slack", "T1")
        assert (again.bot_token, again.team_name, again.installed_at) == ("xoxb-a-2", None, 200.0)
        assert await store.install_find_team("slack", "T2") == grid
        assert await store.install_find("slack", "", "T2") is None  # T2's install is the enterprise's
        assert await store.install_find("discord", "", "T1") is None
        assert await store.install_delete("slack", "", "T1") == 1
        assert await store.install_find_team("slack", "T1") is None
        assert "xox" not in repr(grid)

        await store.oauth_state_issue("s-live", 60)
        await store.oauth_state_issue("s-old", -1)  # already expired
        assert await asyncio.gather(*(store.oauth_state_consume("s-live") for _ in range(5))) == [True] + [False] * 4
        assert not await store.oauth_state_consume("s-old")
        assert not await store.oauth_state_consume("never-issued")
    assert [r["team_id"] for r in await fetch(db_target, "SELECT team_id FROM installations")] == ["T2"]


async def test_replicas_share_dedupe_and_migrate_once(postgres_url):
    """Two stores on one PostgreSQL (two daemons): opened together they migrate once; an event delivered
    to both is owned by exactly one."""
    a, b = make_store(postgres_url), make_store(postgres_url)
    await asyncio.gather(a.open(), b.open())
    try:
        for n in range(50):
            firsts = await asyncio.gather(a.first_delivery(f"slack:Ev{n}"), b.first_delivery(f"slack:Ev{n}"))
            assert sorted(firsts) == [False, True]
        await (await a.log_exchange(ex(text="a에서")))
        await (await b.log_exchange(ex(text="b에서")))
    finally:
        await asyncio.gather(a.close(), b.close())
    assert [r["version"] for r in await fetch(postgres_url, "SELECT version FROM schema_version")] == [SCHEMA_VERSION]
    assert len(await fetch(postgres_url, "SELECT * FROM exchanges")) == 2


async def test_postgres_migration_from_schema_1_keeps_rows(postgres_url):
    from bot.store_pg import PG_MIGRATIONS

    await execute(postgres_url, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                  " INSERT INTO schema_version VALUES (1);" + PG_MIGRATIONS[0] +
                  "INSERT INTO exchanges (platform, user_id, text, raw, reply, outcome, created_at)"
                  " VALUES ('slack', 'U1', '옛날 메시지', '\\x6f6c64', '옛날 답', 'replied', '2020-01-01T00:00:00');"
                  "INSERT INTO feedback (exchange_id, user_id, kind, answer, created_at)"
                  " VALUES (1, 'U1', 'teach', '배운 답', '2020-01-01T00:00:01');")
    async with make_store(postgres_url) as store:
        assert await store.first_delivery("evt-1")
        taught = await store.taught_pairs()
        assert [(p.question, p.answer, p.status) for p in taught] == [("옛날 메시지", "배운 답", "pending")]
        await (await store.log_exchange(ex(text="새 메시지")))  # identity continues after the old row
    rows = await fetch(postgres_url, "SELECT id, raw, reply_message_id FROM exchanges ORDER BY id")
    assert [(r["id"], r["reply_message_id"]) for r in rows] == [(1, None), (2, None)]
    assert bytes(rows[0]["raw"]) == b"old"
    assert await fetch(postgres_url, "SELECT version FROM schema_version") == [{"version": SCHEMA_VERSION}]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill_9_loses_nothing_committed(backend, tmp_path, request):
    target = str(tmp_path / "crash.sqlite3")
    if backend == "postgres":
        target = asyncio.run(request.getfixturevalue("postgres_server").database())
    script = textwrap.dedent(f"""
        import asyncio, sys, time
        from bot.store import Exchange, make_store
        async def main():
            store = await make_store({target!r}).open()
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
    if backend == "sqlite":
        with sqlite3.connect(target) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    texts = {r["text"] for r in asyncio.run(fetch(target, "SELECT text FROM exchanges"))}
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


def test_teach_and_export_pairs_commands_read_postgres(postgres_server, tmp_path, capsys):
    """`chatbot teach` and `chatbot export-pairs` (what `chatbot retrain` is given) on a PostgreSQL URL."""
    from chatbot import teach
    from scripts import export_pairs

    url = asyncio.run(postgres_server.database())

    async def seed():
        async with make_store(url) as store:
            await (await store.log_exchange(ex(user="bob", text="배고파")))
            await store.teach("discord", "bob", None, "밥 먹어요.")
            await (await store.log_exchange(ex(user="amy", text="안녕", reply="반가워요.", reply_message_id="m9")))
            await store.mark_reply("discord", "m9", "amy", "good")
    asyncio.run(seed())
    assert teach.main(["list", "--db", url]) == 0
    assert "배고파\t->\t밥 먹어요." in capsys.readouterr().out
    assert teach.main(["approve", "1", "--db", url]) == 0
    assert teach.main(["list", "--all", "--db", url]) == 0
    assert "approved" in capsys.readouterr().out
    out = tmp_path / "pairs.csv"
    assert export_pairs.main(["--db", url, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "배고파,밥 먹어요." in text and "안녕,반가워요." in text


def test_database_password_is_masked_like_the_platform_secrets():
    from bot.settings import load_settings

    assert load_settings(env={"CHATBOT_DB": "postgresql://bot:pa55word@db:5432/chatbot"}).secrets() == ["pa55word"]
    assert load_settings(env={"CHATBOT_DB": "var/x.sqlite3"}).secrets() == []
