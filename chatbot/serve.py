"""`chatbot serve`: the daemon with every configured platform's adapter.

With no platform configured it runs the terminal chat when a terminal is attached (what
`make run` does on a fresh machine), and otherwise says what to set and exits 2.
The daemon itself (lifecycle, health, reload, drain) is bot/daemon.py; this module only decides
which adapters it runs, so bot/ never imports a platform.
"""
from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys

from bot.adapter import Adapter
from bot.daemon import Daemon
from bot.pipeline import Pipeline
from bot.settings import Settings, SettingsError, load_settings

NOTHING_TO_RUN = """chatbot serve: no chat platform is configured and there is no terminal to chat in.
Set DISCORD_TOKEN for Discord, and/or SLACK_BOT_TOKEN with SLACK_SIGNING_SECRET (HTTP mode) or
SLACK_APP_TOKEN (Socket Mode) for Slack, or SLACK_CLIENT_ID + SLACK_CLIENT_SECRET + SLACK_SIGNING_SECRET
for Slack installed in many workspaces; or run it in a terminal to chat there (see README.md)."""


def build_adapters(settings: Settings, pipeline: Pipeline) -> list[Adapter]:
    """One adapter per configured platform (their libraries are imported only when used)."""
    adapters: list[Adapter] = []
    if settings.discord_enabled:
        from adapters.discord import DiscordAdapter
        adapters.append(DiscordAdapter(pipeline, settings.discord_token, shard_count=settings.shard_count,
                                       shard_ids=settings.shard_ids))
    if settings.slack_enabled:
        from adapters.slack import SlackAdapter
        from adapters.slack_oauth import SlackOAuth
        oauth = SlackOAuth(settings.slack_client_id, settings.slack_client_secret, settings.slack_scopes,
                           settings.slack_redirect_uri) if settings.slack_oauth else None
        adapters.append(SlackAdapter(pipeline, bot_token=settings.slack_bot_token,
                                     signing_secret=settings.slack_signing_secret, app_token=settings.slack_app_token,
                                     http_port=settings.slack_http_port, api_url=settings.slack_api_url, oauth=oauth))
    return adapters


def terminal_chat(user: str):
    """The foreground task of a daemon whose platform is this terminal."""
    async def chat(pipeline: Pipeline) -> None:
        from adapters.terminal import run_terminal
        await run_terminal(pipeline, user)
    return chat


def run_daemon(settings: Settings, terminal_user: str | None) -> int:
    """Start the daemon: the configured platforms, or (with `terminal_user`) the terminal chat alone."""
    from bot.logs import setup_logging
    terminal = terminal_user is not None
    if terminal and sys.stdin.isatty() and sys.stdout.isatty():  # the chat owns the screen
        from adapters.terminal import prepare_screen
        from bot.paths import db_work_dir
        prepare_screen(str(db_work_dir(settings.db) / "store"))  # its native log goes beside the store
    setup_logging(settings.log_level, settings.log_json, settings.secrets())
    if terminal:  # routine logs stay out of the chat
        logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    from core_model.tokenizer import start_jvm
    start_jvm()  # on the main thread, before any worker thread touches Okt
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    daemon = Daemon(settings)
    return asyncio.run(daemon.run(lambda pipeline: [] if terminal else build_adapters(settings, pipeline),
                                  terminal_chat(terminal_user) if terminal else None))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatbot serve", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="TOML file (default: $CHATBOT_CONFIG); see chatbot.example.toml")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"chatbot serve: configuration error: {exc}", file=sys.stderr)
        return 2
    terminal = not (settings.discord_enabled or settings.slack_enabled)
    if terminal and not (sys.stdin.isatty() and sys.stdout.isatty()):
        print(NOTHING_TO_RUN, file=sys.stderr)
        return 2
    return run_daemon(settings, getpass.getuser() if terminal else None)


if __name__ == "__main__":
    sys.exit(main())
