"""The conversation store: one SQLite file through aiosqlite, written by one writer task
(`make_store` picks `bot.store_pg.PgStore` instead for a `postgresql://` URL).

Writes are queued and committed in small transactions by a single writer, so logging never
delays a reply; `close()` flushes the queue. WAL with synchronous=NORMAL keeps every committed
transaction through an application crash (kill -9). Raw texts are stored as UTF-8 BLOBs with
`surrogatepass`, so any str (NUL bytes, lone surrogates, 100,000 characters) round-trips exactly.
The schema version lives in `PRAGMA user_version`; `MIGRATIONS[i]` upgrades version i to i+1.

Outbox rows carry their owner (the replica id of the daemon that accepted them); replicas keep a lease
in `replicas` (`replica_heartbeat`) and take over the pending rows of replicas whose lease ran out
(`outbox_claim`). A SQLite file is served by one daemon, so its start takes every pending row.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiosqlite

from bot.installations import INSTALL_COLUMNS, BotInstall, install_from_row, install_row
from bot.teaching import TaughtPair

log = logging.getLogger(__name__)

MIGRATIONS: list[str] = [
    # 0 -> 1: exchanges and feedback
    """
    CREATE TABLE exchanges (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        workspace TEXT,
        channel TEXT,
        thread TEXT,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        raw BLOB,
        reply TEXT,
        model_version TEXT,
        latency_ms REAL,
        outcome TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE feedback (
        id INTEGER PRIMARY KEY,
        exchange_id INTEGER NOT NULL REFERENCES exchanges(id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('good', 'bad', 'teach')),
        answer TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX feedback_exchange ON feedback(exchange_id);
    """,
    # 1 -> 2: the platform id of the bot's reply (reactions point at it), per-user lookups,
    # and the processed-events table that keeps redelivered platform events out
    """
    ALTER TABLE exchanges ADD COLUMN reply_message_id TEXT;
    CREATE INDEX exchanges_user ON exchanges(platform, user_id, channel);
    CREATE INDEX exchanges_reply ON exchanges(platform, reply_message_id);
    CREATE INDEX exchanges_created ON exchanges(created_at);
    CREATE TABLE processed_events (
        event_key TEXT PRIMARY KEY,
        seen_at REAL NOT NULL
    );
    """,
    # 2 -> 3: the outbox. A message the bot accepted is written here (pending) before the model runs,
    # its reply before it is sent, and it is marked sent with the platform's id after: what is still
    # pending at start-up is answered then (at least once), unless older than the age limit (expired).
    """
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        platform TEXT NOT NULL,
        workspace TEXT,
        channel TEXT,
        thread TEXT,
        reply_to TEXT,
        user_id TEXT NOT NULL,
        text TEXT NOT NULL,
        raw BLOB,
        reply TEXT,
        exchange_id INTEGER REFERENCES exchanges(id) ON DELETE SET NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'expired', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        message_id TEXT,
        created_at REAL NOT NULL,
        done_at REAL
    );
    CREATE INDEX outbox_status ON outbox(status, created_at);
    """,
    # 3 -> 4: taught answers are reviewed: pending (only their teacher gets them), approved (everyone), rejected
    """
    ALTER TABLE feedback ADD COLUMN status TEXT;
    ALTER TABLE feedback ADD COLUMN reviewed_by TEXT;
    UPDATE feedback SET status = 'pending' WHERE kind = 'teach';
    """,
    # 4 -> 5: app installations per workspace (Slack OAuth: each workspace's bot token) and the OAuth flow's
    # one-time states. '' stands for "no enterprise" / "org-wide" so the primary key compares them.
    """
    CREATE TABLE installations (
        platform TEXT NOT NULL,
        enterprise_id TEXT NOT NULL DEFAULT '',
        team_id TEXT NOT NULL DEFAULT '',
        team_name TEXT,
        enterprise_name TEXT,
        app_id TEXT,
        bot_token TEXT NOT NULL,
        bot_id TEXT,
        bot_user_id TEXT,
        bot_scopes TEXT NOT NULL DEFAULT '',
        bot_refresh_token TEXT,
        bot_token_expires_at INTEGER,
        is_enterprise_install INTEGER NOT NULL DEFAULT 0,
        installer_user_id TEXT,
        installed_at REAL NOT NULL,
        PRIMARY KEY (platform, enterprise_id, team_id)
    );
    CREATE INDEX installations_team ON installations(platform, team_id);
    CREATE TABLE oauth_states (
        state TEXT PRIMARY KEY,
        expires_at REAL NOT NULL
    );
    """,
    # 5 -> 6: outbox rows get an owner (a replica id; NULL: accepted before owners, anyone's to send), replicas
    # hold a lease they renew (expired: the replica died, its pending rows are taken over), and named leases
    # (the scheduled retrain) are held by one replica at a time
    """
    ALTER TABLE outbox ADD COLUMN owner TEXT;
    CREATE INDEX outbox_owner ON outbox(status, owner);
    CREATE TABLE replicas (
        id TEXT PRIMARY KEY,
        seen_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)
WRITE_BATCH = 100
EVENT_TTL_S = 24 * 3600


def default_replica_id() -> str:
    """hostname:pid: unique among live daemons; in a container (the daemon is pid 1, the hostname the
    container's) it also survives a restart, so the restarted daemon takes back its own rows at once."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def encode_raw(text: str | None) -> bytes | None:
    return None if text is None else text.encode("utf-8", "surrogatepass")


def _text(value: str | None) -> str | None:
    """A TEXT column value SQLite can hold: lone surrogates become U+FFFD (`raw` keeps the original)."""
    return None if value is None else value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def decode_raw(blob: bytes | None) -> str | None:
    return None if blob is None else bytes(blob).decode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class Exchange:
    platform: str
    user_id: str
    text: str
    raw: str | None
    reply: str | None
    outcome: str
    workspace: str | None = None
    channel: str | None = None
    thread: str | None = None
    model_version: str | None = None
    latency_ms: float | None = None
    reply_message_id: str | None = None


@dataclass(frozen=True)
class OutboxRow:
    """A message the bot owes an answer (status `pending`), as the outbox stores it."""
    id: int
    platform: str
    user_id: str
    text: str
    raw: str | None
    workspace: str | None
    channel: str | None
    thread: str | None
    reply_to: str | None
    reply: str | None  # None: the model had not answered yet
    attempts: int
    created_at: float  # epoch seconds, when the message was accepted


_Op = Callable[[aiosqlite.Connection], Awaitable[Any]]
OUTBOX_KEEP_S = 24 * 3600  # finished outbox rows are kept this long (then pruned at start-up)
OUTBOX_COLUMNS = "id, platform, user_id, text, raw, workspace, channel, thread, reply_to, reply, attempts, created_at"


def outbox_rows(rows) -> list[OutboxRow]:
    """Rows selected as OUTBOX_COLUMNS, oldest first."""
    return sorted((OutboxRow(*r[:4], decode_raw(r[4]), *r[5:]) for r in rows), key=lambda r: r.id)


class Store:
    def __init__(self, path: str | Path, queue_size: int = 10_000, replica_id: str | None = None) -> None:
        """`replica_id`: the owner written on this daemon's outbox rows (default `default_replica_id()`)."""
        self.path = Path(path)
        self.replica_id = replica_id or default_replica_id()
        self._db: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue = asyncio.Queue(maxsize=queue_size)
        self._writer: asyncio.Task | None = None
        self.written = 0
        self.write_errors = 0

    # -- lifecycle ------------------------------------------------------------------------------
    async def open(self) -> Store:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=5000"):
            await self._db.execute(f"PRAGMA {pragma}")
        await migrate(self._db)
        self._writer = asyncio.create_task(self._write_loop(), name="store-writer")
        return self

    async def close(self) -> None:
        """Flush every queued write, then close the file."""
        if self._writer is not None:
            await self._queue.put(None)
            await self._writer
            self._writer = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> Store:
        return await self.open()

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    # -- the writer -----------------------------------------------------------------------------
    async def _submit(self, op: _Op) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((op, fut))
        return fut

    async def _write_loop(self) -> None:
        stop = False
        while not stop:
            batch = [await self._queue.get()]
            while len(batch) < WRITE_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if None in batch:
                stop = True
                batch = [item for item in batch if item is not None]
            results = []
            try:
                for op, fut in batch:
                    results.append((fut, await op(self.db)))
                await self.db.commit()
            except Exception as exc:  # one bad write must not lose the others: retry them one by one
                await self.db.rollback()
                results = await self._write_one_by_one(batch, exc)
            for fut, value in results:
                if not fut.done():
                    if isinstance(value, Exception):
                        fut.set_exception(value)
                    else:
                        fut.set_result(value)
            self.written += len(batch)

    async def _write_one_by_one(self, batch, first_error: Exception) -> list:
        log.warning("store batch failed (%s); retrying writes one by one", first_error)
        results = []
        for op, fut in batch:
            try:
                value = await op(self.db)
                await self.db.commit()
            except Exception as exc:
                await self.db.rollback()
                self.write_errors += 1
                log.error("store write failed: %s", exc)
                value = exc
            results.append((fut, value))
        return results

    # -- writes ---------------------------------------------------------------------------------
    async def log_exchange(self, ex: Exchange) -> asyncio.Future:
        """Queue an exchange; the returned future gives its row id once committed."""
        return await self._submit(lambda db: self._insert_exchange(db, ex))

    @staticmethod
    async def _insert_exchange(db: aiosqlite.Connection, ex: Exchange) -> int:
        cur = await db.execute(
            "INSERT INTO exchanges (platform, workspace, channel, thread, user_id, text, raw, reply,"
            " model_version, latency_ms, outcome, reply_message_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (ex.platform, ex.workspace, ex.channel, ex.thread, ex.user_id, _text(ex.text), encode_raw(ex.raw),
             _text(ex.reply), ex.model_version, ex.latency_ms, ex.outcome, ex.reply_message_id, _now()))
        return int(cur.lastrowid)

    async def mark_reply(self, platform: str, reply_message_id: str, user_id: str, kind: str) -> bool:
        """A good/bad mark by `user_id` on the bot reply `reply_message_id`; False if not theirs."""
        async def op(db: aiosqlite.Connection) -> bool:
            cur = await db.execute(
                "INSERT INTO feedback (exchange_id, user_id, kind, created_at)"
                " SELECT id, user_id, ?, ? FROM exchanges"
                " WHERE platform = ? AND reply_message_id = ? AND user_id = ? ORDER BY id DESC LIMIT 1",
                (kind, _now(), platform, reply_message_id, user_id))
            return cur.rowcount > 0
        return await (await self._submit(op))

    async def mark_last(self, platform: str, user_id: str, channel: str | None, kind: str,
                        answer: str | None = None) -> bool:
        """good/bad/teach on the user's last replied exchange (in `channel` when given)."""
        async def op(db: aiosqlite.Connection) -> bool:
            cur = await db.execute(
                "INSERT INTO feedback (exchange_id, user_id, kind, answer, created_at)"
                " SELECT id, user_id, ?, ?, ? FROM exchanges"
                " WHERE platform = ? AND user_id = ? AND (? IS NULL OR channel = ?) AND outcome = 'replied'"
                " ORDER BY id DESC LIMIT 1",
                (kind, _text(answer), _now(), platform, user_id, channel, channel))
            return cur.rowcount > 0
        return await (await self._submit(op))

    async def teach(self, platform: str, user_id: str, channel: str | None, answer: str) -> TaughtPair | None:
        """Record `answer` as what the user wanted for their last replied message (in `channel`), pending
        review; None when they have no such message."""
        async def op(db: aiosqlite.Connection) -> TaughtPair | None:
            cur = await db.execute(
                "INSERT INTO feedback (exchange_id, user_id, kind, answer, status, created_at)"
                " SELECT id, user_id, 'teach', ?, 'pending', ? FROM exchanges"
                " WHERE platform = ? AND user_id = ? AND (? IS NULL OR channel = ?) AND outcome = 'replied'"
                " ORDER BY id DESC LIMIT 1",
                (_text(answer), _now(), platform, user_id, channel, channel))
            if cur.rowcount == 0:
                return None
            rows = await self._taught(db, "f.id = ?", (cur.lastrowid,))
            return rows[0]
        return await (await self._submit(op))

    @staticmethod
    async def _taught(db: aiosqlite.Connection, where: str, args: tuple) -> list[TaughtPair]:
        async with db.execute(
                "SELECT f.id, e.platform, f.user_id, e.text, f.answer, f.status FROM feedback f"
                f" JOIN exchanges e ON e.id = f.exchange_id WHERE f.kind = 'teach' AND {where} ORDER BY f.id",
                args) as cur:
            return [TaughtPair(*row) for row in await cur.fetchall()]

    async def taught_pairs(self) -> list[TaughtPair]:
        """Every taught pair with its review status, oldest first."""
        return await self._taught(self.db, "1", ())

    async def review_taught(self, ids: list[int], status: str, reviewer: str) -> int:
        """Approve or reject taught pairs; the number changed."""
        async def op(db: aiosqlite.Connection) -> int:
            cur = await db.execute(
                f"UPDATE feedback SET status = ?, reviewed_by = ? WHERE kind = 'teach'"
                f" AND id IN ({','.join('?' * len(ids))})", (status, reviewer, *ids))
            return cur.rowcount
        return await (await self._submit(op)) if ids else 0

    async def forget_user(self, platform: str, user_id: str) -> int:
        """Delete every exchange and mark of this user; returns the number of exchanges removed."""
        async def op(db: aiosqlite.Connection) -> int:
            await db.execute("DELETE FROM feedback WHERE user_id = ? AND exchange_id IN"
                             " (SELECT id FROM exchanges WHERE platform = ?)", (user_id, platform))
            await db.execute("DELETE FROM outbox WHERE platform = ? AND user_id = ?", (platform, user_id))
            cur = await db.execute("DELETE FROM exchanges WHERE platform = ? AND user_id = ?", (platform, user_id))
            return cur.rowcount
        return await (await self._submit(op))

    async def prune(self, retention_days: float) -> int:
        """Delete exchanges older than the retention period (feedback goes with them)."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=retention_days)).isoformat(timespec="milliseconds")

        async def op(db: aiosqlite.Connection) -> int:
            cur = await db.execute("DELETE FROM exchanges WHERE created_at < ?", (cutoff,))
            await db.execute("DELETE FROM processed_events WHERE seen_at < ?", (time.time() - EVENT_TTL_S,))
            await db.execute("DELETE FROM replicas WHERE expires_at < ?", (time.time() - OUTBOX_KEEP_S,))
            return cur.rowcount
        return await (await self._submit(op))

    async def first_delivery(self, event_key: str) -> bool:
        """True the first time `event_key` is seen (kept across restarts); False for a redelivery."""
        async def op(db: aiosqlite.Connection) -> bool:
            cur = await db.execute("INSERT OR IGNORE INTO processed_events (event_key, seen_at) VALUES (?, ?)",
                                   (event_key, time.time()))
            return cur.rowcount > 0
        return await (await self._submit(op))

    # -- the outbox -----------------------------------------------------------------------------
    async def outbox_accept(self, *, platform: str, user_id: str, text: str, raw: str | None,
                            workspace: str | None, channel: str | None, thread: str | None,
                            reply_to: str | None, event_key: str | None = None) -> int | None:
        """A message this replica owes an answer: `pending`, committed when this returns; its row id.

        With `event_key` the delivery is recorded as processed in the same transaction, and None is
        returned (nothing written) when it was already: a redelivery. One transaction, so a failing
        write cannot leave an event marked processed without its answer owed."""
        async def op(db: aiosqlite.Connection) -> int | None:
            if event_key is not None:
                cur = await db.execute("INSERT OR IGNORE INTO processed_events (event_key, seen_at) VALUES (?, ?)",
                                       (event_key, time.time()))
                if cur.rowcount == 0:
                    return None
            cur = await db.execute(
                "INSERT INTO outbox (platform, workspace, channel, thread, reply_to, user_id, text, raw, status,"
                " created_at, owner) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
                (platform, workspace, channel, thread, reply_to, user_id, _text(text), encode_raw(raw), time.time(),
                 self.replica_id))
            return int(cur.lastrowid)
        return await (await self._submit(op))

    async def outbox_reply(self, outbox_id: int, ex: Exchange) -> int:
        """The reply to a pending message and its exchange, in one transaction, before it is sent."""
        async def op(db: aiosqlite.Connection) -> int:
            exchange_id = await self._insert_exchange(db, ex)
            await db.execute("UPDATE outbox SET reply = ?, exchange_id = ? WHERE id = ?",
                             (_text(ex.reply), exchange_id, outbox_id))
            return exchange_id
        return await (await self._submit(op))

    async def outbox_sent(self, outbox_id: int, message_id: str | None) -> None:
        """Delivered: the platform's id of the reply goes on the row and on its exchange (reactions)."""
        async def op(db: aiosqlite.Connection) -> None:
            await db.execute("UPDATE outbox SET status = 'sent', message_id = ?, attempts = attempts + 1,"
                             " done_at = ? WHERE id = ?", (message_id, time.time(), outbox_id))
            await db.execute("UPDATE exchanges SET reply_message_id = ? WHERE id ="
                             " (SELECT exchange_id FROM outbox WHERE id = ?)", (message_id, outbox_id))
        await (await self._submit(op))

    async def outbox_attempt_failed(self, outbox_id: int, error: str, final: str | None = None) -> None:
        """One failed attempt (`error` names why); `final` ('failed' or 'expired') gives up on the row."""
        async def op(db: aiosqlite.Connection) -> None:
            await db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?,"
                             " status = coalesce(?, status), done_at = CASE WHEN ? IS NULL THEN NULL ELSE ? END"
                             " WHERE id = ?", (error, final, final, time.time(), outbox_id))
        await (await self._submit(op))

    async def outbox_expire(self, max_age_s: float) -> dict[str, int]:
        """Mark pending rows older than `max_age_s` expired (never sent), prune old finished rows; the
        number expired per platform."""
        now = time.time()

        async def op(db: aiosqlite.Connection) -> dict[str, int]:
            where = "status = 'pending' AND created_at < ?"
            async with db.execute(f"SELECT platform, count(*) FROM outbox WHERE {where} GROUP BY platform",
                                  (now - max_age_s,)) as cur:
                counts = {platform: n for platform, n in await cur.fetchall()}
            await db.execute(f"UPDATE outbox SET status = 'expired', done_at = ? WHERE {where}", (now, now - max_age_s))
            await db.execute("DELETE FROM outbox WHERE status != 'pending' AND done_at < ?", (now - OUTBOX_KEEP_S,))
            return counts
        return await (await self._submit(op))

    async def outbox_pending(self) -> list[OutboxRow]:
        """Every pending row, whoever owns it, oldest first."""
        async with self.db.execute(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending'") as cur:
            return outbox_rows(await cur.fetchall())

    async def outbox_claim(self, platforms: list[str], *, own: bool) -> list[OutboxRow]:
        """Pending rows on `platforms` (those this replica delivers) that it takes, oldest first: rows without an
        owner and rows of replicas whose lease expired (dead), in one statement; they become its own. `own=True`
        (at start-up) also takes back its own rows; a SQLite file is served by one daemon, so then every
        pending row is taken."""
        if not platforms:
            return []
        dead = ("owner IS NULL OR (owner != ? AND NOT EXISTS"
                " (SELECT 1 FROM replicas r WHERE r.id = outbox.owner AND r.expires_at > ?))")

        async def op(db: aiosqlite.Connection) -> list[OutboxRow]:
            async with db.execute(
                    f"UPDATE outbox SET owner = ? WHERE status = 'pending' AND platform IN"
                    f" ({','.join('?' * len(platforms))}) AND ({'1' if own else dead}) RETURNING {OUTBOX_COLUMNS}",
                    (self.replica_id, *platforms, *(() if own else (self.replica_id, time.time())))) as cur:
                return outbox_rows(await cur.fetchall())
        return await (await self._submit(op))

    # -- replicas and leases ----------------------------------------------------------------------
    async def replica_heartbeat(self, lease_s: float) -> float | None:
        """Renew this replica's lease for `lease_s`: while it holds, no other replica takes its rows. Returns the
        seconds the previous lease had left (negative: it had lapsed that long ago), None at the first beat."""
        async def op(db: aiosqlite.Connection) -> float | None:
            now = time.time()
            async with db.execute("SELECT expires_at FROM replicas WHERE id = ?", (self.replica_id,)) as cur:
                row = await cur.fetchone()
            await db.execute("INSERT INTO replicas (id, seen_at, expires_at) VALUES (?, ?, ?) ON CONFLICT (id)"
                             " DO UPDATE SET seen_at = excluded.seen_at, expires_at = excluded.expires_at",
                             (self.replica_id, now, now + lease_s))
            return None if row is None else row[0] - now
        return await (await self._submit(op))

    async def replica_release(self) -> None:
        """A clean stop: the lease ends now, so live replicas take over what this one still owed."""
        await (await self._submit(lambda db: db.execute("UPDATE replicas SET expires_at = 0 WHERE id = ?",
                                                        (self.replica_id,))))

    async def lease(self, name: str, ttl_s: float) -> bool:
        """Take or renew the lease `name` for this replica for `ttl_s`; False while another replica holds it.
        One conditional upsert: of two replicas asking at once, one gets it."""
        async def op(db: aiosqlite.Connection) -> bool:
            now = time.time()
            cur = await db.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at <= ?",
                (name, self.replica_id, now + ttl_s, now))
            return cur.rowcount > 0
        return await (await self._submit(op))

    # -- installations (bot/installations.py) ------------------------------------------------------
    async def install_save(self, inst: BotInstall) -> None:
        """Insert or replace the workspace's installation (committed when this returns)."""
        names = ", ".join(INSTALL_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in INSTALL_COLUMNS[3:])

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute(f"INSERT INTO installations ({names}) VALUES ({', '.join('?' * len(INSTALL_COLUMNS))})"
                             f" ON CONFLICT (platform, enterprise_id, team_id) DO UPDATE SET {updates}",
                             install_row(inst))
        await (await self._submit(op))

    async def install_find(self, platform: str, enterprise_id: str, team_id: str) -> BotInstall | None:
        async with self.db.execute(f"SELECT {', '.join(INSTALL_COLUMNS)} FROM installations"
                                   " WHERE platform = ? AND enterprise_id = ? AND team_id = ?",
                                   (platform, enterprise_id, team_id)) as cur:
            row = await cur.fetchone()
        return None if row is None else install_from_row(row)

    async def install_find_team(self, platform: str, team_id: str) -> BotInstall | None:
        async with self.db.execute(f"SELECT {', '.join(INSTALL_COLUMNS)} FROM installations"
                                   " WHERE platform = ? AND team_id = ? ORDER BY installed_at DESC LIMIT 1",
                                   (platform, team_id)) as cur:
            row = await cur.fetchone()
        return None if row is None else install_from_row(row)

    async def install_delete(self, platform: str, enterprise_id: str, team_id: str) -> int:
        async def op(db: aiosqlite.Connection) -> int:
            cur = await db.execute("DELETE FROM installations WHERE platform = ? AND enterprise_id = ? AND team_id = ?",
                                   (platform, enterprise_id, team_id))
            return cur.rowcount
        return await (await self._submit(op))

    async def oauth_state_issue(self, state: str, ttl_s: float) -> None:
        """Remember `state` until `ttl_s` from now (and drop states that expired)."""
        now = time.time()

        async def op(db: aiosqlite.Connection) -> None:
            await db.execute("DELETE FROM oauth_states WHERE expires_at < ?", (now,))
            await db.execute("INSERT INTO oauth_states (state, expires_at) VALUES (?, ?)", (state, now + ttl_s))
        await (await self._submit(op))

    async def oauth_state_consume(self, state: str) -> bool:
        """True once for a live state: deleting it is the check, so two redirects with it cannot both pass."""
        async def op(db: aiosqlite.Connection) -> bool:
            cur = await db.execute("DELETE FROM oauth_states WHERE state = ? AND expires_at >= ?", (state, time.time()))
            return cur.rowcount > 0
        return await (await self._submit(op))

    # -- reads ----------------------------------------------------------------------------------
    async def training_rows(self) -> list[tuple[str, str, str | None, str]]:
        """(user text, bot reply, taught answer or None, kind) for every mark, oldest first."""
        async with self.db.execute(
                "SELECT e.text, e.reply, f.answer, f.kind FROM feedback f JOIN exchanges e ON e.id = f.exchange_id"
                " ORDER BY f.id") as cur:
            return [tuple(r) for r in await cur.fetchall()]


def is_postgres_url(db: str | Path) -> bool:
    return str(db).startswith(("postgresql://", "postgres://"))


def make_store(db: str | Path, replica_id: str | None = None):
    """The store `db` names: a `postgresql://` URL -> `bot.store_pg.PgStore` (shared by replicas),
    anything else -> a SQLite file (`Store`). Both have the same methods and schema versions."""
    if is_postgres_url(db):
        from bot.store_pg import PgStore
        return PgStore(str(db), replica_id=replica_id)
    return Store(db, replica_id=replica_id)


async def migrate(db: aiosqlite.Connection) -> int:
    """Upgrade the file in place to SCHEMA_VERSION, one transaction per step; returns the old version."""
    async with db.execute("PRAGMA user_version") as cur:
        (version,) = await cur.fetchone()
    if version > SCHEMA_VERSION:
        raise RuntimeError(f"database schema version {version} is newer than this program ({SCHEMA_VERSION})")
    start = version
    while version < SCHEMA_VERSION:
        await db.executescript("BEGIN;\n" + MIGRATIONS[version] + f"\nPRAGMA user_version = {version + 1};\nCOMMIT;")
        version += 1
        log.info("database migrated to schema version %d", version)
    return start
