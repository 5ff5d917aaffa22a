"""Outbox owners and leases on real SQLite files and a real PostgreSQL: several stores with their own
replica ids on one database, as several daemons would be. A live replica's owed replies are never taken,
a dead one's are taken exactly once; a restart takes back its own; the retrain lease has one holder."""
import asyncio
import sqlite3

import pytest

from bot.store import MIGRATIONS, SCHEMA_VERSION, Store, is_postgres_url, make_store
from tests.bot.test_store import fetch

LIVE_S = 60.0  # a lease that outlives the test
DEAD_S = 1.5  # a lease that runs out during it (long enough to outlast the setup on a loaded machine)


async def owe(store, n: int, platform: str = "slack", tag: str = "") -> list[int]:
    """`n` messages this store's replica accepted (answers owed)."""
    return [await store.outbox_accept(platform=platform, user_id="U1", text=f"{tag}질문 {i}", raw=None,
                                      workspace="T1", channel=f"C{i % 3}", thread=None, reply_to=f"{tag}{i}")
            for i in range(n)]


async def stores(target: str, *ids: str) -> list:
    """One store per replica id on `target` (SQLite's opened one after the other: its migration is not
    made for daemons starting together, PostgreSQL's is)."""
    if is_postgres_url(target):
        return list(await asyncio.gather(*(make_store(target, replica_id=i).open() for i in ids)))
    return [await make_store(target, replica_id=i).open() for i in ids]


async def test_a_live_replicas_rows_are_never_taken_and_a_dead_ones_exactly_once(db_target):
    live, *dead = await stores(db_target, "live", *(f"dead{i}" for i in range(8)))
    takers = await stores(db_target, "b", "c", "d")
    try:
        await live.replica_heartbeat(LIVE_S)
        live_rows = await owe(live, 5, tag="live")
        dead_rows = []
        for store in dead:
            dead_rows += await owe(store, 5, tag=store.replica_id)
        # Their leases start together, after the writes, so every one still holds at the first claim.
        await asyncio.gather(*(store.replica_heartbeat(DEAD_S) for store in dead),
                             *(taker.replica_heartbeat(LIVE_S) for taker in takers))
        assert [await t.outbox_claim(["slack"], own=False) for t in takers] == [[], [], []]  # every lease holds
        await asyncio.sleep(DEAD_S + 0.2)
        taken = await asyncio.gather(*(t.outbox_claim(["slack"], own=False) for t in takers))
        ids = [r.id for rows in taken for r in rows]
        assert sorted(ids) == sorted(dead_rows)  # every dead replica's row, each by one replica only
        assert [await t.outbox_claim(["slack"], own=False) for t in takers] == [[], [], []]  # the takers are alive
        owners = {r["id"]: r["owner"] for r in await fetch(db_target, "SELECT id, owner FROM outbox")}
        assert all(owners[i] == "live" for i in live_rows)
        for taker, rows in zip(takers, taken):
            assert all(owners[r.id] == taker.replica_id for r in rows)
    finally:
        await asyncio.gather(*(s.close() for s in (live, *dead, *takers)))


async def test_only_platforms_the_replica_delivers_and_only_pending_rows_are_taken(db_target):
    dead, taker = await stores(db_target, "dead", "taker")
    try:
        await dead.replica_heartbeat(DEAD_S)
        slack = await owe(dead, 2, "slack")
        await owe(dead, 2, "discord")
        await dead.outbox_sent(slack[0], "1.5")
        await asyncio.sleep(DEAD_S + 0.2)
        await taker.replica_heartbeat(LIVE_S)
        assert [r.id for r in await taker.outbox_claim(["slack"], own=False)] == [slack[1]]
        assert await taker.outbox_claim([], own=False) == []
    finally:
        await asyncio.gather(dead.close(), taker.close())


async def test_a_restarted_replica_takes_back_its_own_rows_at_once_and_a_released_lease_hands_them_over(
        postgres_url):
    a, b = await stores(postgres_url, "a", "b")
    await asyncio.gather(a.replica_heartbeat(LIVE_S), b.replica_heartbeat(LIVE_S))
    owed_a, owed_b = await owe(a, 3, tag="a"), await owe(b, 2, tag="b")
    await a.close()  # killed: its lease still holds for a minute
    assert await b.outbox_claim(["slack"], own=False) == []
    a = await make_store(postgres_url, replica_id="a").open()  # the same replica started again
    try:
        assert await a.replica_heartbeat(LIVE_S) > 0  # its previous lease was still running
        assert [r.id for r in await a.outbox_claim(["slack"], own=True)] == owed_a  # its own, not b's (alive)
        await b.replica_release()  # b stops cleanly, owing two
        assert [r.id for r in await a.outbox_claim(["slack"], own=False)] == owed_b
    finally:
        await asyncio.gather(a.close(), b.close())


async def test_a_sqlite_file_has_one_daemon_whose_start_takes_every_pending_row(tmp_path):
    path = tmp_path / "db.sqlite3"
    async with Store(path, replica_id="before") as before:
        await before.replica_heartbeat(LIVE_S)
        owed = await owe(before, 3)
    async with Store(path, replica_id="after") as after:  # restarted with another id, the old lease running
        assert [r.id for r in await after.outbox_claim(["slack"], own=True)] == owed


async def test_the_retrain_lease_has_one_holder_at_a_time_and_is_taken_over_after_it_expires(db_target):
    replicas = await stores(db_target, "a", "b", "c")
    try:
        for n in range(10):  # asked at the same moment: exactly one gets it
            got = await asyncio.gather(*(r.lease(f"race{n}", LIVE_S) for r in replicas))
            assert got.count(True) == 1
        a, b, c = replicas
        assert await a.lease("retrain", 0.5) and not await b.lease("retrain", 0.5)
        assert await a.lease("retrain", 0.5)  # the holder renews
        await asyncio.sleep(0.7)  # a died: its lease runs out
        assert await b.lease("retrain", LIVE_S) and not await c.lease("retrain", LIVE_S)
        assert not await a.lease("retrain", LIVE_S)  # back too late: b holds it now
        assert await fetch(db_target, "SELECT name, holder FROM leases WHERE name = 'retrain'") == [
            {"name": "retrain", "holder": "b"}]
    finally:
        await asyncio.gather(*(r.close() for r in replicas))


async def test_a_failed_outbox_write_leaves_the_delivery_unrecorded_for_its_redelivery(db_target):
    """The dedupe record and the outbox row are one transaction: when the row cannot be written (here a
    NOT NULL constraint), the event is not marked processed, so Slack's redelivery is answered."""
    async with make_store(db_target, replica_id="a") as store:
        common = dict(platform="slack", text="질문", raw=None, workspace="T1", channel="C1", thread=None,
                      reply_to="1.0", event_key="slack:Ev1")
        with pytest.raises(Exception, match="(?i)not.null"):
            await store.outbox_accept(user_id=None, **common)
        assert await fetch(db_target, "SELECT event_key FROM processed_events") == []
        first = await store.outbox_accept(user_id="U1", **common)  # the redelivery
        assert first is not None and await store.outbox_accept(user_id="U1", **common) is None  # then a duplicate
    rows = await fetch(db_target, "SELECT id, owner FROM outbox")
    assert rows == [{"id": first, "owner": "a"}]
    assert len(await fetch(db_target, "SELECT event_key FROM processed_events")) == 1


async def test_migration_from_schema_4_keeps_owed_rows_for_any_replica_to_send(tmp_path):
    path = tmp_path / "v4.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript("".join(MIGRATIONS[:4]) + "\nPRAGMA user_version = 4;")
        db.execute("INSERT INTO outbox (platform, user_id, text, reply, status, created_at)"
                   " VALUES ('slack', 'U1', '옛 질문', '옛 답', 'pending', strftime('%s', 'now'))")
        db.execute("INSERT INTO outbox (platform, user_id, text, status, created_at, done_at)"
                   " VALUES ('slack', 'U2', '보낸 질문', 'sent', 1, 2)")
        db.execute("INSERT INTO processed_events VALUES ('slack:Ev0', 1)")
    async with Store(path, replica_id="new") as store:
        assert not await store.first_delivery("slack:Ev0")
        await store.replica_heartbeat(LIVE_S)
        (row,) = await store.outbox_claim(["slack"], own=False)  # no owner: anyone's to send
        assert (row.text, row.reply) == ("옛 질문", "옛 답")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
        assert db.execute("SELECT owner, status FROM outbox ORDER BY id").fetchall() == [("new", "pending"),
                                                                                         (None, "sent")]


async def test_a_daemon_takes_over_what_a_dead_replica_owed_and_hands_its_own_over_when_it_stops(postgres_url):
    from bot.daemon import Daemon
    from bot.settings import Settings
    from tests.bot.test_outbox import Platform
    from tests.fakes import FakeEngine

    settings = Settings(db=postgres_url, http_port=0, model_watch_s=0, rate_per_minute=0, replica_id="d",
                        replica_lease_s=1)
    d, platforms = Daemon(settings, engine_factory=lambda _: FakeEngine(lambda t: f"{t}!")), []
    run = asyncio.create_task(d.run(lambda pipeline: platforms.append(Platform(pipeline)) or platforms))
    for _ in range(500):
        if d.phase == "ready":
            break
        await asyncio.sleep(0.01)
    assert d.health()[1]["replica"] == "d"
    (dead,) = await stores(postgres_url, "dead")
    await dead.replica_heartbeat(DEAD_S)
    owed = await owe(dead, 3, platform="fake")
    await dead.close()  # killed with its answers owed
    for _ in range(1000):  # its lease runs out; the daemon's next renewal (every 1/3 s) takes them over
        if len(platforms[0].posts) == 3:
            break
        await asyncio.sleep(0.01)
    assert sorted(p.reply_to for p in platforms[0].posts) == ["0", "1", "2"]
    rows = await fetch(postgres_url, "SELECT id, owner, status FROM outbox ORDER BY id")
    assert rows == [{"id": i, "owner": "d", "status": "sent"} for i in owed]
    d.stopping.set()
    assert await asyncio.wait_for(run, 10) == 0
    assert await fetch(postgres_url, "SELECT id, expires_at FROM replicas WHERE id = 'd'") == [
        {"id": "d", "expires_at": 0}]  # stopped: what it still owed is the others' to send at once


async def test_only_one_replica_runs_the_scheduled_retrain_and_another_takes_over_when_it_dies(
        postgres_url, tmp_path):
    import sys

    from bot.retrainer import Retrainer

    log = tmp_path / "runs.txt"
    child = ("import sys, time; log = open(sys.argv[1], 'a'); log.write(sys.argv[2] + ' start\\n'); log.flush();"
             " time.sleep(0.3); log.write(sys.argv[2] + ' end\\n')")
    replicas = await stores(postgres_url, "a", "b")

    async def promoted() -> None:
        pass

    def retrainer(store) -> Retrainer:
        return Retrainer(0.25, [[sys.executable, "-c", child, str(log), store.replica_id]], promoted,
                         claim=lambda ttl_s: store.lease("retrain", ttl_s))

    a, b = retrainer(replicas[0]), retrainer(replicas[1])
    stopping, stop_a = asyncio.Event(), asyncio.Event()

    async def until(condition) -> None:
        for _ in range(200):
            if condition():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("timed out")

    run_a = asyncio.create_task(a.run_forever(stop_a))
    run_b = None
    try:
        await until(lambda: a.status.runs == 1)
        run_b = asyncio.create_task(b.run_forever(stopping))
        await until(lambda: a.status.runs >= 3 and b.status.skipped >= 2)  # b's turns come, a holds the lease
        assert b.status.runs == 0
        stop_a.set()  # a dies: it no longer renews, its lease runs out, and b's next turn takes it
        await run_a
        await until(lambda: b.status.runs >= 1 and b.status.last_outcome is not None)
    finally:
        stop_a.set()
        stopping.set()
        await asyncio.gather(run_a, *([run_b] if run_b else []))
        await asyncio.gather(*(r.close() for r in replicas))
    lines = log.read_text().splitlines()
    assert lines == [f"{who} {what}" for who in ("a",) * a.status.runs + ("b",) * b.status.runs
                     for what in ("start", "end")]  # one retrain at a time, never two at once
    assert b.status.describe()["skipped"] == b.status.skipped >= 2
