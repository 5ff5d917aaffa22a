"""Retraining that runs itself: every `retrain_every`, export the pairs people taught and marked, retrain
in a child process at low priority, and hot-reload the model when `chatbot retrain` promoted it.

The child is the same `chatbot export-pairs` + `chatbot retrain` an operator would run by hand, with
its gated promotion (held-out loss, the answer scorer's Recall@1, the replies' chrF): a refused or
failed retrain leaves the serving model alone. The daemon keeps answering meanwhile; the child runs
at `nice` 10 so the worker's threads come first.

Replicas sharing one database each have this schedule; a lease in the database (`claim`) lets one of
them run it: the holder renews it at each of its turns and while its child runs, always for two periods,
so its renewal lands a whole period before the lease would run out (a lease of one period would expire
the instant the holder's next turn renews it, and a busy machine lets another replica in between). The
other replicas skip their turns and pick up the promoted model through the model watch. If the holder
dies, its lease runs out within two periods and the next replica whose turn comes takes it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PROMOTED, NOT_PROMOTED = 0, 3  # `chatbot retrain` exit codes
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """"24h", "30m", "90s", "2d", "3600" -> seconds; "" or "0" -> 0 (off). ValueError otherwise."""
    if not text.strip():
        return 0.0
    match = DURATION.match(text)
    if not match:
        raise ValueError(f"expected a duration like 24h, 30m or 90s, got {text!r}")
    return float(match.group(1)) * UNITS[match.group(2)]


@dataclass
class RetrainStatus:
    """What /healthz shows of the last scheduled retrain."""
    runs: int = 0
    last_started: float | None = None
    last_finished: float | None = None
    last_outcome: str | None = None  # "promoted", "not promoted", "failed: ..."
    running: bool = False
    skipped: int = 0  # turns left to another replica holding the retrain lease

    def describe(self) -> dict:
        return {"runs": self.runs, "running": self.running, "last_started": _iso(self.last_started),
                "last_finished": _iso(self.last_finished), "last_outcome": self.last_outcome,
                "skipped": self.skipped}


def _iso(t: float | None) -> str | None:
    return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def default_commands(db: str, work_dir: Path) -> list[list[str]]:
    """The two steps an operator would type, as child-process command lines. A database URL (which may
    hold a password) is not put on a command line, where `ps` shows it: the child gets it as CHATBOT_DB
    (`child_env`)."""
    pairs = str(work_dir / "retrain-pairs.csv")
    chatbot = [sys.executable, "-m", "chatbot"]
    where = [] if "://" in db else ["--db", db]
    return [[*chatbot, "export-pairs", *where, "--out", pairs], [*chatbot, "retrain", "--pairs", pairs]]


def child_env(db: str) -> dict[str, str] | None:
    """The environment of the retrain steps: the daemon's, with CHATBOT_DB set to a database URL."""
    return {**os.environ, "CHATBOT_DB": db} if "://" in db else None


@dataclass
class Retrainer:
    every_s: float
    commands: Sequence[Sequence[str]]
    on_promoted: Callable[[], Awaitable[object]]
    status: RetrainStatus = field(default_factory=RetrainStatus)
    niceness: int = 10
    env: dict[str, str] | None = None  # the children's environment (None: the daemon's)
    # Takes or renews the retrain lease for the given seconds; False: another replica holds it (None: no lease).
    claim: Callable[[float], Awaitable[bool]] | None = None

    @property
    def lease_s(self) -> float:
        """How long a claim holds: two periods, so the holder's next turn renews it with a period to spare."""
        return 2 * self.every_s

    async def run_forever(self, stopping: asyncio.Event) -> None:
        while self.every_s > 0 and not stopping.is_set():
            try:
                await asyncio.wait_for(stopping.wait(), self.every_s)
                return
            except asyncio.TimeoutError:
                await self.scheduled()

    async def scheduled(self) -> str | None:
        """One scheduled turn: run if this replica holds the retrain lease (None: another one does)."""
        if self.claim is None:
            return await self.run_once()
        try:
            held = await self.claim(self.lease_s)
        except Exception as exc:  # the database briefly away: this turn is skipped, not run twice
            log.error("scheduled retrain: the retrain lease could not be taken: %s: %s", type(exc).__name__, exc)
            held = False
        if not held:
            self.status.skipped += 1
            log.info("scheduled retrain: another replica holds the retrain lease; skipped")
            return None
        renewing = asyncio.create_task(self._renew())
        try:
            return await self.run_once()
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            await self._claim_quietly()  # held from now on: the others skip their turns meanwhile

    async def _renew(self) -> None:
        """Keep the lease while the child runs (a retrain may outlast a period)."""
        while True:
            await asyncio.sleep(min(60.0, self.every_s / 3))
            await self._claim_quietly()

    async def _claim_quietly(self) -> None:
        try:
            if not await self.claim(self.lease_s):
                log.warning("scheduled retrain: the retrain lease was taken by another replica")
        except Exception as exc:
            log.warning("scheduled retrain: the retrain lease not renewed: %s: %s", type(exc).__name__, exc)

    async def run_once(self) -> str:
        """One export + retrain; reloads the model when promoted. The outcome, also kept in `status`."""
        self.status.running, self.status.last_started = True, time.time()
        self.status.runs += 1
        try:
            outcome = await self._run_steps()
        except Exception as exc:  # a broken child must never take the daemon down
            outcome = f"failed: {type(exc).__name__}: {exc}"
        if outcome == "promoted":
            await self.on_promoted()
        self.status.running, self.status.last_finished, self.status.last_outcome = False, time.time(), outcome
        (log.info if not outcome.startswith("failed") else log.error)("scheduled retrain: %s", outcome)
        return outcome

    async def _run_steps(self) -> str:
        code = PROMOTED
        for argv in self.commands:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=self.env,
                preexec_fn=lambda: os.nice(self.niceness))
            _, err = await proc.communicate()
            code = proc.returncode
            if code not in (PROMOTED, NOT_PROMOTED):
                last = (err.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
                return f"failed: {Path(argv[0]).name} {' '.join(argv[1:3])} exited {code}: {last}"
        return "promoted" if code == PROMOTED else "not promoted"
