"""Taught answers on the real platforms: Discord through dpytest, Slack through signed requests to bolt."""
import discord.ext.test as dpytest

from bot.commands import REVIEW_ADMIN_ONLY
from tests.adapters.test_discord import cfg, engines, env  # noqa: F401 - pytest fixtures used below
from tests.adapters.test_slack import mention, slack_env
from tests.fakes import FakeEngine, FakeSlackAPI

ANSWER = "고양이 이름은 나비예요."


async def test_discord_teach_is_live_then_approved_by_an_admin_only(env, tiny_pairs):  # noqa: F811
    adapter, _, _ = env
    _, channel, alice, bob = cfg()
    me = adapter.client.user
    adapter.pipeline.commands.admins = (str(bob.id),)
    question = tiny_pairs[5].q

    async def say(member, text):
        await dpytest.message(f"<@{me.id}> {text}", channel=channel, member=member)
        return dpytest.get_message().content

    model_reply = await say(alice, question)
    assert model_reply != ANSWER
    assert "멘션" in await say(alice, "!teach @everyone 다 모여")
    assert "배웠어요" in await say(alice, f"!teach {ANSWER}")
    assert await say(alice, question) == ANSWER  # at once, for the teacher
    assert await say(bob, question) == model_reply  # not for others before review
    assert await say(alice, "!approve 1") == REVIEW_ADMIN_ONLY
    assert "승인" in await say(bob, "!approve 1")
    assert await say(bob, question) == ANSWER


async def test_slack_teach_answers_in_the_thread_and_refuses_non_admin_approval(tmp_path):
    engine = FakeEngine(lambda text: "모델의 답")
    async with slack_env(tmp_path, engine, await FakeSlackAPI().start()) as slack:
        slack.adapter.pipeline.commands.admins = ("UADMIN",)
        assert await slack.event(mention("우리 고양이 이름이 뭐였지", "1.000")) == 200
        (first,) = await slack.api.wait_posts(1)
        assert first["text"] == "모델의 답"
        assert "배웠어요" in await slack.command("/teach", ANSWER)
        assert "링크" in await slack.command("/teach", "www.spam.com 으로 와요")
        assert await slack.event(mention("우리 고양이 이름이 뭐였지?", "2.000")) == 200
        posts = await slack.api.wait_posts(2)
        assert posts[1]["text"] == ANSWER and posts[1]["thread_ts"] == "2.000"
        assert await slack.command("/approve", "1") == REVIEW_ADMIN_ONLY
        assert await slack.event(mention("우리 고양이 이름이 뭐였지", "3.000", user="U2")) == 200
        assert (await slack.api.wait_posts(3))[2]["text"] == "모델의 답"
        assert "승인" in await slack.command("/approve", "1", user="UADMIN")
        assert await slack.event(mention("우리 고양이 이름이 뭐였지", "4.000", user="U2")) == 200
        assert (await slack.api.wait_posts(4))[3]["text"] == ANSWER
