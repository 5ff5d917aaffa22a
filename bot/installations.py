"""App installations: a platform's bot credentials per workspace, kept in the conversation store.

A Slack app distributed through OAuth is installed into many workspaces, each with its own bot token
(and bot user). The store keeps one row per (platform, enterprise, workspace) - the latest install -
so that every replica on the same database authorizes events, and delivers replies, with the right
workspace's token. The one-time `state` values of the OAuth flow live there too, so an install started
on one replica can finish on another, and a state is accepted once. The platform's own types stay in
its adapter (adapters/slack_oauth.py); bot/ only stores plain values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class BotInstall:
    """One workspace's installation of the bot. Tokens never show in `repr` (logs, tracebacks)."""
    platform: str
    team_id: str  # '' for an organization-wide install
    bot_token: str = field(repr=False)
    enterprise_id: str = ""  # '' when the workspace is not in an enterprise organization
    team_name: str | None = None
    enterprise_name: str | None = None
    app_id: str | None = None
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: str = ""  # comma-separated, as the platform grants them
    bot_refresh_token: str | None = field(default=None, repr=False)  # only with token rotation
    bot_token_expires_at: int | None = None  # epoch seconds; only with token rotation
    is_enterprise_install: bool = False
    installer_user_id: str | None = None
    installed_at: float = 0.0


INSTALL_COLUMNS = ("platform", "enterprise_id", "team_id", "team_name", "enterprise_name", "app_id", "bot_token",
                   "bot_id", "bot_user_id", "bot_scopes", "bot_refresh_token", "bot_token_expires_at",
                   "is_enterprise_install", "installer_user_id", "installed_at")


def install_row(inst: BotInstall) -> tuple:
    """The values of `INSTALL_COLUMNS`, in order."""
    return tuple(getattr(inst, c) for c in INSTALL_COLUMNS)


def install_from_row(row) -> BotInstall:
    values = dict(zip(INSTALL_COLUMNS, row))
    values["is_enterprise_install"] = bool(values["is_enterprise_install"])
    return BotInstall(**values)


class Installations(Protocol):
    """What an adapter needs of the store for installs (both `Store` and `PgStore` have it)."""

    async def install_save(self, inst: BotInstall) -> None:
        """Insert or replace the workspace's installation."""

    async def install_find(self, platform: str, enterprise_id: str, team_id: str) -> BotInstall | None:
        """The installation of exactly this (enterprise, workspace); None if not installed."""

    async def install_find_team(self, platform: str, team_id: str) -> BotInstall | None:
        """The latest installation covering workspace `team_id` (whatever its enterprise); None if none."""

    async def install_delete(self, platform: str, enterprise_id: str, team_id: str) -> int:
        """Forget the workspace's installation (uninstalled, tokens revoked); the number of rows removed."""

    async def oauth_state_issue(self, state: str, ttl_s: float) -> None:
        """Remember a new OAuth `state` for `ttl_s` seconds."""

    async def oauth_state_consume(self, state: str) -> bool:
        """True once for a state issued and not expired (it is deleted); False otherwise."""
