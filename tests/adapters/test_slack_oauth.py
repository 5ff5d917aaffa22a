"""Slack installed in many workspaces (OAuth), end to end on 127.0.0.1: the real bolt app serving /slack/install
and /slack/oauth_redirect, a fake Web API answering oauth.v2.access and auth.test per token, signed events."""
import asyncio
import contextlib
import html
import json
import logging
import re
import time
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from adapters.slack import SlackAdapter
from adapters.slack_oauth import SlackOAuth
from bot.logs import RedactSecrets
from bot.pipeline import Pipeline
from bot.settings import SettingsError, load_settings
from bot.store import make_store
from bot.worker import InferenceWorker, WorkerConfig
from tests.adapters.test_slack import SECRET, Env, mention
from tests.fakes import EngineSwitch, FakeEngine, FakeSlackAPI, stop_slack

CLIENT_ID, CLIENT_SECRET = "1234.5678", "client-secret-0123456789"
REDIRECT = "https://bot.example/slack/oauth_redirect"
TEAMS = {"xoxb-team-a-token": {"team_id": "TA", "team_name": "Alpha", "bot_user_id": "UBOTA", "bot_id": "BA"},
         "xoxb-team-b-token": {"team_id": "TB", "team_name": "Beta", "bot_user_id": "UBOTB", "bot_id": "BB"}}


class OAuthEnv(Env):
    def __init__(self, adapter, api, store, session):
        super().__init__(adapter, api, store, session, None)
        self.base = f"http://127.0.0.1:{adapter.http_port}"

    async def team_event(self, team: str, event: dict, **kw) -> tuple[int, str]:
        """An event from workspace `team`: (status, body)."""
        self.n += 1
        body = json.dumps({"token": "x", "team_id": team, "api_app_id": "A1", "type": "event_callback",
                           "event_id": f"Ev{self.n:04d}", "event_time": int(time.time()), "event": event})
        ts = str(int(time.time()))
        from slack_sdk.signature import SignatureVerifier
        sig = SignatureVerifier(SECRET).generate_signature(timestamp=ts, body=body)
        async with self.session.post(self.url, data=body.encode(), headers={
                "Content-Type": "application/json", "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}) as r:
            return r.status, await r.text()

    async def start_install(self) -> str:
        """GET /slack/install as a browser: the page's "Add to Slack" link; returns its state (which bolt also
        sets as a Secure cookie; the browser would send it back over HTTPS, `redirect` does here)."""
        async with self.session.get(self.base + "/slack/install") as resp:
            assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
            page = await resp.text()
            cookie = resp.headers["Set-Cookie"]
        link = html.unescape(re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', page).group(1))
        query = parse_qs(urlsplit(link).query)
        assert query["client_id"] == [CLIENT_ID] and query["redirect_uri"] == [REDIRECT]
        assert query["scope"] == ["app_mentions:read,chat:write"]
        state = query["state"][0]
        assert cookie.startswith(f"slack-app-oauth-state={state};") and "HttpOnly" in cookie and "Secure" in cookie
        return state

    async def redirect(self, code: str, state: str, cookie: str | None = None) -> int:
        """Slack sending the browser back: /slack/oauth_redirect?code&state, with the state cookie the browser
        holds (`cookie`: another one; "": none)."""
        cookie = state if cookie is None else cookie
        url = f"{self.base}/slack/oauth_redirect?code={code}&state={state}"
        async with self.session.get(url, headers={"Cookie": f"slack-app-oauth-state={cookie}"} if cookie else {}) as r:
            return r.status

    async def install(self, code: str) -> int:
        return await self.redirect(code, await self.start_install())


@contextlib.asynccontextmanager
async def oauth_env(db: str):
    """The real bolt app in HTTP mode with OAuth installs kept in the store at `db`, posting to a fake API
    that knows two workspaces (neither installed yet)."""
    api = await FakeSlackAPI().start()
    api.client, api.workspaces = (CLIENT_ID, CLIENT_SECRET), dict(TEAMS)
    api.codes = {"code-a": "xoxb-team-a-token", "code-b": "xoxb-team-b-token"}
    worker = InferenceWorker("unused", WorkerConfig(), engine_factory=EngineSwitch(FakeEngine(lambda t: f"답: {t}")))
    await worker.start()
    store = await make_store(db).open()
    adapter = SlackAdapter(Pipeline(worker, store), signing_secret=SECRET, http_host="127.0.0.1", http_port=0,
                           api_url=api.url, oauth=SlackOAuth(CLIENT_ID, CLIENT_SECRET,
                                                             ("app_mentions:read", "chat:write"), REDIRECT))
    await adapter.start()
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            yield OAuthEnv(adapter, api, store, session)
    finally:
        await stop_slack(adapter, worker, store, api)


async def test_two_workspaces_installed_each_answered_with_its_own_token(db_target, caplog):
    caplog.set_level(logging.INFO)
    async with oauth_env(db_target) as env:
        assert await env.install("code-a") == 200
        assert await env.install("code-b") == 200
        assert env.api.auth_headers["oauth.v2.access"] == [env.api.auth_headers["oauth.v2.access"][0]] * 2
        assert env.api.auth_headers["oauth.v2.access"][0].startswith("Basic ")  # the client secret, not in the URL
        a, b = [await env.store.install_find_team("slack", t) for t in ("TA", "TB")]
        assert (a.bot_token, a.bot_user_id, a.bot_id, a.team_name, a.installer_user_id) == (
            "xoxb-team-a-token", "UBOTA", "BA", "Alpha", "UINSTALLER")
        assert (b.bot_token, b.bot_user_id, b.team_name) == ("xoxb-team-b-token", "UBOTB", "Beta")

        assert (await env.team_event("TA", mention("알파에서 안녕", "1.000", channel="CA")))[0] == 200
        assert (await env.team_event("TB", mention("베타에서 안녕", "2.000", channel="CB")))[0] == 200
        posts = await env.api.wait_posts(2)
        by_channel = {p["channel"]: p for p in posts}
        assert by_channel["CA"]["auth"] == "Bearer xoxb-team-a-token" and by_channel["CA"]["thread_ts"] == "1.000"
        assert by_channel["CB"]["auth"] == "Bearer xoxb-team-b-token" and by_channel["CB"]["thread_ts"] == "2.000"
        assert by_channel["CA"]["text"] == "답: 알파에서 안녕" and by_channel["CB"]["text"] == "답: 베타에서 안녕"

        # The bot's own user differs per workspace: UBOTB writing in TB is the bot itself (ignored), in TA
        # it is just someone.
        dm = {"type": "message", "channel_type": "im", "user": "UBOTB", "text": "나 자신"}
        await env.team_event("TB", {**dm, "channel": "DB", "ts": "3.000"})
        await env.team_event("TA", {**dm, "channel": "DA", "ts": "4.000"})
        posts = await env.api.wait_posts(3)
        await asyncio.sleep(0.3)
        assert [(p["channel"], p["auth"]) for p in env.api.posts[2:]] == [("DA", "Bearer xoxb-team-a-token")]

        # A workspace that never installed the app: no answer, no crash, the others still answered.
        status, _ = await env.team_event("TX", mention("누구세요", "5.000", channel="CX"))
        assert status == 200
        await env.team_event("TA", mention("또 안녕", "6.000", channel="CA"))
        await env.api.wait_posts(4)
        await asyncio.sleep(0.3)
        channels = [p["channel"] for p in env.api.posts]
        assert sorted(channels[:2]) == ["CA", "CB"] and channels[2:] == ["DA", "CA"]  # the first two answered at once
        assert env.api.auth_headers["auth.test"].count("Bearer xoxb-team-a-token") == 2  # install + first event

        # Uninstalled from TB: its row goes, and its mentions go unanswered.
        await env.team_event("TB", {"type": "app_uninstalled"})
        for _ in range(50):
            if await env.store.install_find_team("slack", "TB") is None:
                break
            await asyncio.sleep(0.05)
        assert await env.store.install_find_team("slack", "TB") is None
        await env.team_event("TB", mention("아직 있어?", "7.000", channel="CB"))
        await asyncio.sleep(0.5)
        assert len(env.api.posts) == 4
    for secret in ("xoxb-team-a-token", "xoxb-team-b-token", CLIENT_SECRET):
        assert secret not in caplog.text
    assert "installed in workspace TA (Alpha)" in caplog.text


async def test_forged_replayed_expired_and_foreign_states_are_refused(tmp_path):
    db = str(tmp_path / "db.sqlite3")
    async with oauth_env(db) as env:
        assert await env.redirect("code-a", "forged", cookie="forged") == 401  # never issued
        state = await env.start_install()
        assert await env.redirect("code-a", state, cookie="") == 400  # another browser (no state cookie)
        assert await env.redirect("code-a", state, cookie="other") == 400
        assert await env.redirect("code-a", state) == 200
        assert await env.redirect("code-a", state, cookie=state) == 401  # the same state again
        assert env.api.calls.count("oauth.v2.access") == 1

        state = await env.start_install()
        import sqlite3
        with sqlite3.connect(db) as con:
            con.execute("UPDATE oauth_states SET expires_at = 0")  # ten minutes later
        assert await env.redirect("code-b", state) == 401
        assert await env.install("no-such-code") == 401  # a good state, a bad code: nothing saved
        assert env.api.calls.count("oauth.v2.access") == 2
        assert await env.store.install_find_team("slack", "TB") is None
        assert await env.store.install_find_team("slack", "TA") is not None


async def test_a_reply_owed_to_a_workspace_is_posted_with_its_token_after_a_restart(tmp_path):
    """The outbox's deliveries (retries, replies owed from before a restart) look the token up by workspace."""
    db = str(tmp_path / "db.sqlite3")
    async with oauth_env(db) as env:
        assert await env.install("code-b") == 200
        store = env.store
        owed = await store.outbox_accept(platform="slack", user_id="U1", text="질문", raw="질문", workspace="TB",
                                         channel="CB", thread="9.000", reply_to="9.000")
        gone = await store.outbox_accept(platform="slack", user_id="U2", text="질문", raw="질문", workspace="TX",
                                         channel="CX", thread=None, reply_to="9.500")
        assert await env.adapter.pipeline.resume() == 2
        (post,) = await env.api.wait_posts(1)
        await asyncio.sleep(0.3)
        assert (post["channel"], post["auth"], post["thread_ts"]) == ("CB", "Bearer xoxb-team-b-token", "9.000")
        import sqlite3
        with sqlite3.connect(db) as con:
            rows = dict(con.execute("SELECT id, status || ' ' || coalesce(last_error, '') FROM outbox").fetchall())
        assert rows[owed] == "sent " and rows[gone].startswith("failed not_installed")



async def test_rotating_tokens_are_refreshed_before_they_expire_and_saved(tmp_path):
    """An app with token rotation: the install's token expires within the hour, so the first event refreshes
    it (oauth.v2.access, grant_type=refresh_token) and the new token answers and is kept."""
    async with oauth_env(str(tmp_path / "db.sqlite3")) as env:
        team = {"team_id": "TC", "team_name": "Gamma", "bot_user_id": "UBOTC", "bot_id": "BC"}
        env.api.workspaces["xoxe.xoxb-1-old"] = {**team, "refresh_token": "xoxe-1-first", "expires_in": 3600}
        env.api.workspaces["xoxe.xoxb-1-new"] = team
        env.api.codes["code-c"], env.api.refresh["xoxe-1-first"] = "xoxe.xoxb-1-old", "xoxe.xoxb-1-new"
        assert await env.install("code-c") == 200
        await env.team_event("TC", mention("감마에서 안녕", "1.000", channel="CC"))
        (post,) = await env.api.wait_posts(1)
        assert post["auth"] == "Bearer xoxe.xoxb-1-new"
        row = await env.store.install_find_team("slack", "TC")
        assert (row.bot_token, row.bot_refresh_token, row.installer_user_id) == (
            "xoxe.xoxb-1-new", "xoxe-1-after-xoxe.xoxb-1-new", "UINSTALLER")
        assert row.bot_token_expires_at > time.time() + 40000

def test_oauth_settings_are_checked_and_the_secret_never_shows():
    env = {"SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET, "SLACK_SIGNING_SECRET": "s" * 8}
    settings = load_settings(env=env)
    assert settings.slack_oauth and settings.slack_enabled and CLIENT_SECRET in settings.secrets()
    assert CLIENT_SECRET not in repr(settings) and CLIENT_SECRET not in repr(SlackOAuth(CLIENT_ID, CLIENT_SECRET, ()))
    assert settings.slack_scopes[:2] == ("app_mentions:read", "chat:write")
    assert load_settings(env={**env, "SLACK_SCOPES": "chat:write,commands"}).slack_scopes == ("chat:write", "commands")
    for bad, key in (({"SLACK_CLIENT_SECRET": ""}, "slack_client_secret"),
                     ({"SLACK_BOT_TOKEN": "xoxb-1"}, "slack_bot_token"),
                     ({"SLACK_SIGNING_SECRET": ""}, "slack_signing_secret"),
                     ({"SLACK_APP_TOKEN": "xapp-1"}, "slack_signing_secret")):
        with pytest.raises(SettingsError, match=key):
            load_settings(env={**env, **bad})
    assert not load_settings(env={}).slack_enabled


def test_slack_tokens_are_masked_in_logs_even_when_not_configured():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token %s and %s refused; secret %s", (
        "xoxb-123-456-abcDEF", "xoxe.xoxb-1-MIIE-x", CLIENT_SECRET), None)
    RedactSecrets([CLIENT_SECRET]).filter(record)
    assert record.getMessage() == "token *** and *** refused; secret ***"



async def test_chatbot_serve_wires_oauth_installs_to_the_daemons_store(tmp_path):
    from chatbot.serve import build_adapters

    settings = load_settings(env={"SLACK_CLIENT_ID": CLIENT_ID, "SLACK_CLIENT_SECRET": CLIENT_SECRET,
                                  "SLACK_SIGNING_SECRET": SECRET, "SLACK_REDIRECT_URI": REDIRECT})
    async with make_store(str(tmp_path / "db.sqlite3")) as store:
        worker = InferenceWorker("unused", WorkerConfig(), engine_factory=EngineSwitch(FakeEngine(str)))
        (adapter,) = build_adapters(settings, Pipeline(worker, store))
        flow = adapter.app.oauth_flow
        assert adapter.tokens is not None and adapter.client.token is None
        assert (flow.install_path, flow.redirect_uri_path, flow.settings.redirect_uri) == (
            "/slack/install", "/slack/oauth_redirect", REDIRECT)
        assert flow.settings.installation_store.records is store
