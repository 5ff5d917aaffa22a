"""One frozen settings object from an optional TOML file and the environment (the environment wins).

Every setting has a TOML key and an environment variable `CHATBOT_<KEY>`; platform secrets keep
their platform names (`DISCORD_TOKEN`, `SLACK_BOT_TOKEN`, ...). Unknown keys and bad values raise
`SettingsError` naming the key, before anything connects. Secrets never show in `repr`.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.paths import DEFAULT_DB
from bot.retrainer import parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class SettingsError(ValueError):
    pass


class Secret(str):
    """A str that prints as *** (logs, tracebacks, repr)."""

    def __repr__(self) -> str:
        return "Secret('***')" if self else "Secret('')"


# Settings whose environment variable is the platform's own name, not CHATBOT_<KEY>.
PLATFORM_ENV = {
    "discord_token": "DISCORD_TOKEN",
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_http_port": "SLACK_HTTP_PORT",
    "slack_api_url": "SLACK_API_URL",
    "slack_client_id": "SLACK_CLIENT_ID",
    "slack_client_secret": "SLACK_CLIENT_SECRET",
    "slack_redirect_uri": "SLACK_REDIRECT_URI",
    "slack_scopes": "SLACK_SCOPES",
}
# What the bot asks of a workspace that installs it (README, Slack set-up).
SLACK_BOT_SCOPES = ("app_mentions:read", "chat:write", "im:history", "im:read", "reactions:read", "commands")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    model_dir: str = ""  # empty: models/current if promoted, else models/default
    db: str = str(DEFAULT_DB)
    http_host: str = "127.0.0.1"
    http_port: int = 8080  # 0 turns the health/metrics endpoint off
    log_level: str = "INFO"
    log_json: bool = False
    max_batch: int = 64
    batch_window_ms: float = 5.0
    queue_size: int = 256
    timeout_s: float = 15.0
    beam_width: int = 4  # beam search (better replies); 1: greedy decoding, ~3x the throughput
    answer_bank: bool = True  # answer from the model's bank when an answer fits; false: generate every reply
    rate_per_minute: float = 20.0  # per user; 0 turns rate limiting off
    rate_burst: int = 5
    allow_guilds: tuple[str, ...] = ()  # empty: every guild
    allow_channels: tuple[str, ...] = ()  # empty: every channel
    admin_users: tuple[str, ...] = ()  # may run the reload admin command
    retention_days: float = 0.0  # 0 keeps exchanges forever
    model_watch_s: float = 5.0  # how often to look for a newly promoted model; 0 off
    teach_auto_approve: bool = False  # a taught answer reaches everyone once teach_quorum users taught it
    teach_quorum: int = 3
    retrain_every: str = ""  # e.g. "24h": export pairs + retrain in a child process, reload if promoted
    delivery_max_age_s: float = 600.0  # a reply not delivered by then (retries, restarts) is given up: expired
    shard_count: int = 0  # Discord shards over all processes; 0: no sharding (one connection)
    shard_ids: tuple[int, ...] = ()  # this process's shards; empty with shard_count: all of them
    replica_id: str = ""  # the owner name on this daemon's outbox rows; empty: hostname:pid
    replica_lease_s: float = 30.0  # a replica silent this long is dead: live ones take over what it owed
    discord_token: Secret = field(default=Secret(""), repr=False)
    slack_bot_token: Secret = field(default=Secret(""), repr=False)
    slack_app_token: Secret = field(default=Secret(""), repr=False)
    slack_signing_secret: Secret = field(default=Secret(""), repr=False)
    slack_http_port: int = 3000
    slack_api_url: str = ""  # empty: Slack's own Web API
    # Many workspaces (OAuth install): instead of slack_bot_token, each workspace's token from the store
    slack_client_id: str = ""
    slack_client_secret: Secret = field(default=Secret(""), repr=False)
    slack_redirect_uri: str = ""  # empty: the app's only Redirect URL configured at Slack
    slack_scopes: tuple[str, ...] = SLACK_BOT_SCOPES

    def secrets(self) -> list[str]:
        from urllib.parse import urlsplit

        db_password = urlsplit(self.db).password if "://" in self.db else None  # postgresql://user:PASSWORD@...
        return [v for v in (self.discord_token, self.slack_bot_token, self.slack_app_token,
                            self.slack_signing_secret, self.slack_client_secret, db_password) if v]

    @property
    def slack_oauth(self) -> bool:
        """Many workspaces: installed through OAuth (`/slack/install`), their tokens kept in the store."""
        return bool(self.slack_client_id and self.slack_client_secret)

    @property
    def slack_enabled(self) -> bool:
        return bool(self.slack_bot_token) or self.slack_oauth

    @property
    def discord_enabled(self) -> bool:
        return bool(self.discord_token)


def _convert(key: str, typ: str, value: Any, source: str) -> Any:
    def bad(why: str) -> SettingsError:
        return SettingsError(f"{key} ({source}): {why}, got {value!r}")

    if typ == "Secret":
        if not isinstance(value, str):
            raise bad("expected a string")
        return Secret(value.strip())
    if typ == "bool":
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
            return word in ("1", "true", "yes", "on")
        raise bad("expected true or false")
    if typ in ("int", "float"):
        try:
            number = int(value) if typ == "int" else float(value)
        except (TypeError, ValueError):
            raise bad(f"expected a number ({typ})") from None
        if isinstance(value, bool) or number < 0:
            raise bad("expected a number >= 0")
        return number
    if typ == "tuple[int, ...]":
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad("expected a list or comma-separated whole numbers")
        return tuple(_whole(i, bad) for i in items if str(i).strip())
    if typ.startswith("tuple"):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise bad("expected a list or comma-separated text")
        return tuple(str(i).strip() for i in items if str(i).strip())
    if not isinstance(value, str):
        raise bad("expected a string")
    return value


def _whole(item: Any, bad) -> int:
    """One list item as a whole number >= 0: 3 or "3", never 3.5, true or "-1"."""
    text = item.strip() if isinstance(item, str) else item
    if isinstance(text, bool) or not (isinstance(text, int) or (isinstance(text, str) and text.isdigit())):
        raise bad(f"expected whole numbers >= 0 ({item!r} is not)")
    return int(text)


def _check_shards(count: int, ids: tuple[int, ...]) -> None:
    """Discord closes a connection identifying as a shard outside 0..count-1: say so before connecting."""
    if ids and not count:
        raise SettingsError("shard_ids: needs shard_count (CHATBOT_SHARD_COUNT), the number of shards over all "
                            f"processes; got shard_ids {list(ids)} without it")
    for sid in ids:
        if sid >= count:
            raise SettingsError(f"shard_ids: {sid} is outside 0..{count - 1} (shard_count is {count})")
        if ids.count(sid) > 1:
            raise SettingsError(f"shard_ids: {sid} is listed twice; each shard runs in exactly one process")


def load_settings(config_path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    config_path = config_path or env.get("CHATBOT_CONFIG") or None
    values: dict[str, Any] = {}
    types = {f.name: str(f.type) for f in fields(Settings)}
    if config_path:
        try:
            data = tomllib.loads(Path(config_path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"config file {config_path}: not found") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"config file {config_path}: not valid TOML: {exc}") from None
        for key, value in data.items():
            if key not in types:
                raise SettingsError(f"{key} ({config_path}): unknown setting; known: {', '.join(types)}")
            values[key] = _convert(key, types[key], value, str(config_path))
    for key, typ in types.items():
        name = PLATFORM_ENV.get(key, "CHATBOT_" + key.upper())
        if name in env:
            values[key] = _convert(key, typ, env[name], f"${name}")
    known_env = {"CHATBOT_CONFIG"} | {"CHATBOT_" + k.upper() for k in types if k not in PLATFORM_ENV}
    unknown = sorted(k for k in env if k.startswith("CHATBOT_") and k not in known_env)
    if unknown:
        raise SettingsError(f"{unknown[0]}: unknown setting (environment); known: {', '.join(sorted(known_env))}")
    settings = Settings(**values)
    if settings.log_level.upper() not in LOG_LEVELS:
        raise SettingsError(f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {settings.log_level!r}")
    if settings.http_port > 65535 or settings.slack_http_port > 65535:
        raise SettingsError("http_port/slack_http_port: expected a port number 0-65535")
    try:
        parse_duration(settings.retrain_every)
    except ValueError as exc:
        raise SettingsError(f"retrain_every: {exc}") from None
    if settings.replica_lease_s < 1:
        raise SettingsError(f"replica_lease_s: expected at least 1 (seconds), got {settings.replica_lease_s}")
    for key in ("max_batch", "queue_size", "beam_width", "teach_quorum"):
        if getattr(settings, key) < 1:
            raise SettingsError(f"{key}: expected at least 1, got {getattr(settings, key)}")
    _check_shards(settings.shard_count, settings.shard_ids)
    if settings.slack_bot_token and not (settings.slack_app_token or settings.slack_signing_secret):
        raise SettingsError("slack_signing_secret: SLACK_BOT_TOKEN is set but neither SLACK_APP_TOKEN (Socket Mode) "
                            "nor SLACK_SIGNING_SECRET (HTTP mode) is")
    _check_slack(settings)
    return settings


def _check_slack(settings: Settings) -> None:
    """One Slack mode at a time, each with what it needs."""
    if bool(settings.slack_client_id) != bool(settings.slack_client_secret):
        raise SettingsError("slack_client_secret: SLACK_CLIENT_ID and SLACK_CLIENT_SECRET go together (OAuth installs)")
    if settings.slack_oauth:
        if settings.slack_bot_token:
            raise SettingsError("slack_bot_token: set either SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID and "
                                "SLACK_CLIENT_SECRET (many workspaces, installed through /slack/install), not both")
        if settings.slack_app_token or not settings.slack_signing_secret:
            raise SettingsError("slack_signing_secret: OAuth installs (SLACK_CLIENT_ID) need HTTP mode: "
                                "SLACK_SIGNING_SECRET set and SLACK_APP_TOKEN unset")
        if not settings.slack_scopes:
            raise SettingsError("slack_scopes: expected the bot scopes to ask for, got none")
