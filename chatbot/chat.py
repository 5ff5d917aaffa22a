"""`chatbot chat`: the terminal conversation with a model, logged to the store.

Wiring only (worker, store, pipeline, the terminal adapter); the conversation is adapters/terminal.py.
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import sys

from adapters.terminal import prepare_screen, run_terminal
from bot.pipeline import Pipeline


async def _main(args: argparse.Namespace) -> int:
    from bot.paths import default_model_dir
    from bot.store import Store
    from bot.worker import InferenceWorker, load_engine
    from core_model.tokenizer import start_jvm

    start_jvm()
    worker = InferenceWorker(args.model or default_model_dir(),
                             engine_factory=functools.partial(load_engine, beam_width=args.beam,
                                                               answer_bank=args.answer_bank))
    await worker.start()
    store = await Store(args.db).open()
    try:
        return await run_terminal(Pipeline(worker, store), args.user)
    finally:
        await worker.stop()
        await store.close()


def main(argv: list[str] | None = None) -> int:
    from bot.paths import default_db_path
    from bot.settings import Settings

    parser = argparse.ArgumentParser(prog="chatbot chat", description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(default_db_path()),
                        help="SQLite file (default: $CHATBOT_DB or var/chatbot.sqlite3)")
    parser.add_argument("--model", default=None, help="model directory (default: models/current or models/default)")
    parser.add_argument("--beam", type=int, default=Settings.beam_width,
                        help=f"beam width (default {Settings.beam_width}; 1: greedy)")
    parser.add_argument("--answer-bank", action=argparse.BooleanOptionalAction, default=Settings.answer_bank,
                        help="answer from the model's bank when an answer fits "
                             "(--no-answer-bank: generate every reply)")
    parser.add_argument("--user", default=getpass.getuser(), help="user id to log under (default: your login)")
    args = parser.parse_args(argv)
    if sys.stdin.isatty() and sys.stdout.isatty():
        prepare_screen(args.db)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
