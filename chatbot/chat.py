"""`chatbot chat`: the daemon with the terminal as its only platform, logged to the store.

The same settings (TOML file and CHATBOT_* variables: model, beam width, answer bank, rate limit,
/healthz and /metrics) and the same daemon as `chatbot serve`; reads one message per line when piped.
"""
from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys

from bot.settings import SettingsError, load_settings
from chatbot.serve import run_daemon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatbot chat", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="TOML file (default: $CHATBOT_CONFIG); see chatbot.example.toml")
    parser.add_argument("--db", default=None, help="SQLite file (default: the settings' db, var/chatbot.sqlite3)")
    parser.add_argument("--model", default=None, help="model directory (default: the settings' model_dir)")
    parser.add_argument("--user", default=getpass.getuser(), help="user id to log under (default: your login)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"chatbot chat: configuration error: {exc}", file=sys.stderr)
        return 2
    overrides = {key: value for key, value in (("db", args.db), ("model_dir", args.model)) if value}
    return run_daemon(dataclasses.replace(settings, **overrides), args.user)


if __name__ == "__main__":
    sys.exit(main())
