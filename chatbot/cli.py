"""The `chatbot` command: one entry point, sub-commands loaded only when used (fast `--help`).

The composition root: it names the application modules (chatbot/) and the scripts by module path.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "serve": ("chatbot.serve", "run the daemon: Discord/Slack adapters, or the terminal chat without tokens"),
    "chat": ("chatbot.chat", "talk to the bot in the terminal (logs to the store)"),
    "reply": ("scripts.reply", "print one reply, or answer JSON lines with --jsonl"),
    "train": ("scripts.train", "train a model directory from a Q,A,label CSV"),
    "bank": ("scripts.bank", "give a model the answer bank of a corpus's training side, no retraining"),
    "teach": ("chatbot.teach", "review taught answers: list, approve or reject them"),
    "export-pairs": ("scripts.export_pairs", "turn logged conversations into training pairs"),
    "retrain": ("scripts.retrain", "train on the base corpus plus logged pairs; promote if not worse"),
    "eval": ("scripts.evaluate", "score models and a retrieval baseline on the held-out split"),
    "bench": ("scripts.bench", "benchmark the worker against seed-style eager decoding"),
}


def _usage() -> str:
    lines = ["usage: chatbot COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`chatbot COMMAND --help` shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"chatbot: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
