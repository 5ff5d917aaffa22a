"""`chatbot export-pairs`: taught corrections and good-marked replies -> Q,A,label training pairs."""
from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field

from core_model.data import Pair, write_pairs
from core_model.text import has_mention_or_link, normalize

MAX_PAIR_CHARS = 200


@dataclass
class ExportSummary:
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def __str__(self) -> str:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())) or "none"
        return f"kept {self.kept} pairs; dropped: {reasons}"


def select_pairs(rows: list[tuple[str, str, str | None, str]]) -> tuple[list[Pair], ExportSummary]:
    """Pairs from (user text, reply, taught answer, mark kind) rows.

    A teach gives (text, taught answer); a good mark gives (text, reply) unless the same exchange
    was also marked bad (bad marks are never exported). Pairs are normalized and deduplicated;
    empty, over-long, and mention- or link-bearing texts are dropped.
    """
    summary = ExportSummary()
    bad = {(text, reply) for text, reply, _, kind in rows if kind == "bad"}
    pairs: list[Pair] = []
    seen: set[tuple[str, str]] = set()
    for text, reply, answer, kind in rows:
        if kind == "bad":
            summary.dropped["marked bad"] += 1
            continue
        if kind == "good" and (text, reply) in bad:
            summary.dropped["good and bad"] += 1
            continue
        q, a = normalize(text), normalize(answer if kind == "teach" else reply)
        if not q or not a:
            summary.dropped["empty"] += 1
        elif len(q) > MAX_PAIR_CHARS or len(a) > MAX_PAIR_CHARS:
            summary.dropped["too long"] += 1
        elif has_mention_or_link(q) or has_mention_or_link(a):
            summary.dropped["mention or link"] += 1
        elif (q, a) in seen:
            summary.dropped["duplicate"] += 1
        else:
            seen.add((q, a))
            pairs.append(Pair(q, a, "0"))
    summary.kept = len(pairs)
    return pairs, summary


async def _rows(db_path: str):
    from bot.store import make_store

    async with make_store(db_path) as store:
        return await store.training_rows()


def main(argv: list[str] | None = None) -> int:
    from bot.paths import default_db_path

    parser = argparse.ArgumentParser(prog="chatbot export-pairs", description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(default_db_path()),
                        help="SQLite file or postgresql:// URL (default: $CHATBOT_DB or var/chatbot.sqlite3)")
    parser.add_argument("--out", required=True, help="CSV file to write (Q,A,label)")
    args = parser.parse_args(argv)
    pairs, summary = select_pairs(asyncio.run(_rows(args.db)))
    write_pairs(args.out, pairs)
    print(f"{args.out}: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
