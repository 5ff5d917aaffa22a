"""`chatbot teach list|approve|reject ID...`: review what users taught the bot, from the command line.

A running daemon on the same database picks the decision up within `model_watch_s` seconds (it
re-reads the taught answers on the same poll that looks for a promoted model).
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from bot.paths import default_db_path
from bot.store import make_store


async def _run(args: argparse.Namespace) -> int:
    async with make_store(args.db) as store:
        pairs = await store.taught_pairs()
        if args.action == "list":
            shown = [p for p in pairs if args.all or p.status == "pending"]
            for p in shown:
                print(f"#{p.id}\t{p.status}\t{p.platform}:{p.user_id}\t{p.question}\t->\t{p.answer}")
            if not shown:
                print("no taught answers waiting for review", file=sys.stderr)
            return 0
        known = {p.id for p in pairs}
        missing = [i for i in args.ids if i not in known]
        if missing:
            print(f"chatbot teach: no taught answer #{', #'.join(map(str, missing))}", file=sys.stderr)
            return 2
        status = "approved" if args.action == "approve" else "rejected"
        changed = await store.review_taught(args.ids, status, "cli")
        print(f"{changed} taught answer(s) {status}", file=sys.stderr)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatbot teach", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("list", "approve", "reject"))
    parser.add_argument("ids", nargs="*", type=lambda v: int(v.lstrip("#")), metavar="ID")
    parser.add_argument("--db", default=str(default_db_path()),
                        help="SQLite file or postgresql:// URL (default: $CHATBOT_DB)")
    parser.add_argument("--all", action="store_true", help="list: reviewed answers too")
    args = parser.parse_args(argv)
    if args.action != "list" and not args.ids:
        parser.error(f"{args.action} needs the id(s) shown by `chatbot teach list`")
    return asyncio.run(_run(args))


if __name__ == "__main__":
    sys.exit(main())
