"""Slack installed in many workspaces (OAuth): bolt's install flow, with installs and states in our store.

With SLACK_CLIENT_ID / SLACK_CLIENT_SECRET the HTTP mode also serves bolt's `/slack/install` (a page with
the "Add to Slack" link, and a one-time `state` in a cookie) and `/slack/oauth_redirect` (state checked
against the cookie and consumed in the store, code exchanged at oauth.v2.access, the install saved).
Each event is then authorized with its own workspace's bot token, and its bot user id (bolt's
`AuthorizeResult`, from auth.test once per token) is what bolt's self-event filter compares with, per
workspace. Replies the outbox delivers later (a retry, after a restart) look the token up again by
workspace, so an uninstalled workspace gets nothing more.

Installs and states live in the daemon's own database (`Installations`, bot/installations.py) rather than
slack_sdk's file or SQLAlchemy stores: the same SQLite file or PostgreSQL database as everything else,
versioned by the store's migrations, shared by replicas, no second connection pool or dependency.
Only what the bot uses is kept: the bot token (and its refresh token with token rotation), never a user token.
"""
from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.error import BoltError
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.web.async_client import AsyncWebClient

from bot.installations import BotInstall, Installations

log = logging.getLogger(__name__)
PLATFORM = "slack"
ROTATE_BEFORE_MIN = 120  # with token rotation: refresh a bot token this long before it expires (bolt's default)


@dataclass(frozen=True)
class SlackOAuth:
    """The app's OAuth credentials and what it asks for; the secret never shows in repr."""
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...]
    redirect_uri: str = ""  # empty: Slack uses the app's only configured Redirect URL
    state_ttl_s: int = 600


def _key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> tuple[str, str]:
    """The store's key: an organization-wide install is the enterprise's, whichever workspace asks."""
    return enterprise_id or "", "" if is_enterprise_install else (team_id or "")


def _scopes(value: Any) -> str:
    return ",".join(value) if isinstance(value, (list, tuple)) else (value or "")


def to_bot(inst: BotInstall) -> Bot:
    return Bot(app_id=inst.app_id, enterprise_id=inst.enterprise_id or None, enterprise_name=inst.enterprise_name,
               team_id=inst.team_id or None, team_name=inst.team_name, bot_token=inst.bot_token,
               bot_id=inst.bot_id, bot_user_id=inst.bot_user_id, bot_scopes=inst.bot_scopes,
               bot_refresh_token=inst.bot_refresh_token, bot_token_expires_at=inst.bot_token_expires_at,
               is_enterprise_install=inst.is_enterprise_install, installed_at=inst.installed_at)


class StoreInstallationStore(AsyncInstallationStore):
    """slack_sdk's installation store interface on our store: one bot install per workspace."""

    def __init__(self, records: Installations) -> None:
        self.records = records

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_save(self, installation: Installation) -> None:
        """A completed install (or reinstall) replaces the workspace's row; user tokens are not kept."""
        if not installation.bot_token:
            raise BoltError("the installation has no bot token (the bot scopes were not granted)")
        enterprise, team = _key(installation.enterprise_id, installation.team_id, installation.is_enterprise_install)
        await self.records.install_save(BotInstall(
            PLATFORM, team, installation.bot_token, enterprise_id=enterprise, team_name=installation.team_name,
            enterprise_name=installation.enterprise_name, app_id=installation.app_id, bot_id=installation.bot_id,
            bot_user_id=installation.bot_user_id, bot_scopes=_scopes(installation.bot_scopes),
            bot_refresh_token=installation.bot_refresh_token, bot_token_expires_at=installation.bot_token_expires_at,
            is_enterprise_install=bool(installation.is_enterprise_install), installer_user_id=installation.user_id,
            installed_at=installation.installed_at or time.time()))
        log.info("slack: installed in workspace %s (%s)", team or enterprise, installation.team_name or "")

    async def async_save_bot(self, bot: Bot) -> None:
        """A rotated bot token: the row keeps its installer, the token fields change."""
        enterprise, team = _key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        old = await self.records.install_find(PLATFORM, enterprise, team)
        new = BotInstall(PLATFORM, team, bot.bot_token, enterprise_id=enterprise, team_name=bot.team_name,
                         enterprise_name=bot.enterprise_name, app_id=bot.app_id, bot_id=bot.bot_id,
                         bot_user_id=bot.bot_user_id, bot_scopes=_scopes(bot.bot_scopes),
                         bot_refresh_token=bot.bot_refresh_token, bot_token_expires_at=bot.bot_token_expires_at,
                         is_enterprise_install=bool(bot.is_enterprise_install), installed_at=bot.installed_at)
        if old is not None:
            new = dataclasses.replace(new, installer_user_id=old.installer_user_id)
        await self.records.install_save(new)

    async def async_find_bot(self, *, enterprise_id: str | None, team_id: str | None,
                             is_enterprise_install: bool | None = False) -> Bot | None:
        inst = await self.records.install_find(PLATFORM, *_key(enterprise_id, team_id, is_enterprise_install))
        return None if inst is None else to_bot(inst)

    async def async_find_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                      user_id: str | None = None,
                                      is_enterprise_install: bool | None = False) -> Installation | None:
        """The workspace's install; asked for a user's own install, only the installer's (no user tokens kept)."""
        inst = await self.records.install_find(PLATFORM, *_key(enterprise_id, team_id, is_enterprise_install))
        if inst is None or (user_id is not None and user_id != inst.installer_user_id):
            return None
        return Installation(
            app_id=inst.app_id, enterprise_id=inst.enterprise_id or None, enterprise_name=inst.enterprise_name,
            team_id=inst.team_id or None, team_name=inst.team_name, bot_token=inst.bot_token, bot_id=inst.bot_id,
            bot_user_id=inst.bot_user_id, bot_scopes=inst.bot_scopes, bot_refresh_token=inst.bot_refresh_token,
            bot_token_expires_at=inst.bot_token_expires_at, is_enterprise_install=inst.is_enterprise_install,
            user_id=inst.installer_user_id or "", installed_at=inst.installed_at)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        """The app was uninstalled or its bot token revoked (bolt's token revocation listeners); an
        organization-wide install comes without a team id, so its key is the enterprise's."""
        enterprise, team = _key(enterprise_id, team_id, False)
        if await self.records.install_delete(PLATFORM, enterprise, team):
            log.info("slack: uninstalled from workspace %s", team or enterprise)

    async def async_delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                                        user_id: str | None = None) -> None:
        if user_id is None:  # a user's own token revoked: nothing to forget, none is kept
            await self.async_delete_bot(enterprise_id=enterprise_id, team_id=team_id)


class StoreStateStore(AsyncOAuthStateStore):
    """The OAuth `state`: random, kept in the store until used once or expired, so a forged or replayed
    redirect is refused on whichever replica it reaches. (Bolt also ties it to the browser by a cookie.)"""

    def __init__(self, records: Installations, ttl_s: int) -> None:
        self.records, self.ttl_s = records, ttl_s

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args, **kwargs) -> str:
        state = secrets.token_urlsafe(24)
        await self.records.oauth_state_issue(state, self.ttl_s)
        return state

    async def async_consume(self, state: str) -> bool:
        return bool(state) and await self.records.oauth_state_consume(state)


def app_arguments(oauth: SlackOAuth, records: Installations, client: AsyncWebClient) -> dict[str, Any]:
    """AsyncApp's keyword arguments for OAuth installs: bolt's flow with our stores, and an authorize that
    looks up the workspace's bot (one store read per event) and caches auth.test per token (bolt's default
    asks auth.test on every event)."""
    installation_store = StoreInstallationStore(records)
    settings = AsyncOAuthSettings(
        client_id=oauth.client_id, client_secret=oauth.client_secret, scopes=list(oauth.scopes), user_scopes=[],
        redirect_uri=oauth.redirect_uri or None, installation_store=installation_store,
        installation_store_bot_only=True, state_store=StoreStateStore(records, oauth.state_ttl_s),
        state_expiration_seconds=oauth.state_ttl_s, logger=logging.getLogger("slack_bolt.oauth"))
    authorize = AsyncInstallationStoreAuthorize(
        logger=logging.getLogger("slack_bolt.authorize"), installation_store=installation_store,
        client_id=oauth.client_id, client_secret=oauth.client_secret, bot_only=True, cache_enabled=True,
        client=client, token_rotation_expiration_minutes=ROTATE_BEFORE_MIN)
    return {"oauth_settings": settings, "authorize": authorize, "installation_store_bot_only": True}


class WorkspaceTokens:
    """Each workspace's bot token for posting a reply (the outbox's deliveries), rotated when it must be."""

    def __init__(self, store: StoreInstallationStore, authorize: AsyncInstallationStoreAuthorize) -> None:
        self.store, self.authorize = store, authorize

    async def bot_token(self, team_id: str | None) -> str | None:
        """The token to post in workspace `team_id`; None when the app is not installed there (any more)."""
        inst = await self.store.records.install_find_team(PLATFORM, team_id or "") if team_id else None
        if inst is None:
            return None
        rotator = self.authorize.token_rotator
        if inst.bot_refresh_token and rotator is not None:
            refreshed = await rotator.perform_bot_token_rotation(bot=to_bot(inst),
                                                                 minutes_before_expiration=ROTATE_BEFORE_MIN)
            if refreshed is not None:
                await self.store.async_save_bot(refreshed)
                return refreshed.bot_token
        return inst.bot_token
