"""The pipeline through the in-process adapter: conversations, no platform and no model (a FakeEngine)."""
import pytest_asyncio

from adapters.inprocess import InProcessAdapter
from bot.commands import ATTACHMENT_ONLY, TEACH_NONE, Commands, ForgetConfirmations
from bot.messages import USER_TEXT, Incoming, Outcome
from bot.pipeline import Pipeline
from bot.ratelimit import RateLimiter
from bot.steps import AllowList
from bot.store import Store
from bot.worker import InferenceWorker, WorkerConfig
from tests.fakes import FakeEngine, read_exchanges


class Bot:
    """A pipeline with a fake engine that answers `<text>, 그렇군요` and remembers what it was given."""

    def __init__(self, store, **pipeline_options):
        self.seen: list[str] = []
        self.engine = FakeEngine(self.answer)
        self.worker = InferenceWorker("unused", WorkerConfig(batch_window_ms=0), engine_factory=lambda _: self.engine)
        self.pipeline = Pipeline(self.worker, store, **pipeline_options)
        self.chat = InProcessAdapter(self.pipeline)

    def answer(self, text: str) -> str:
        self.seen.append(text)
        return f"{text}, 그렇군요"


@pytest_asyncio.fixture
async def store(tmp_path):
    async with Store(tmp_path / "db.sqlite3") as store:
        yield store


@pytest_asyncio.fixture
async def bot(store):
    bot = Bot(store)
    await bot.worker.start()
    yield bot
    await bot.worker.stop()


async def test_a_conversation_is_answered_and_recorded_with_text_normalized_once(bot, store):
    await bot.chat.push_message("안녕")
    assert await bot.chat.pop_message() == "안녕, 그렇군요"
    await bot.chat.push_message("  오늘\u200b   날씨\t좋다 ")
    assert await bot.chat.pop_message() == "오늘 날씨 좋다, 그렇군요"
    await bot.chat.push_message(" \u200b\x00 ")  # nothing left after normalization: the model is not asked
    assert "비어" in await bot.chat.pop_message()
    assert bot.seen == ["안녕", "오늘 날씨 좋다"]
    await store.close()
    rows = read_exchanges(store.path)
    assert [(r["text"], r["raw"], r["outcome"]) for r in rows] == [
        ("안녕", "안녕", "replied"), ("오늘 날씨 좋다", "  오늘\u200b   날씨\t좋다 ", "replied"),
        ("", " \u200b\x00 ", "empty")]
    assert rows[0]["reply_message_id"] == "m1" and rows[0]["channel"] == "room"


async def test_admission_steps_drop_bots_unaddressed_disallowed_and_redelivered(bot):
    bot.pipeline.allow.channels = ("room",)
    await bot.chat.push_message("봇이 쓴 글", from_bot=True)
    await bot.chat.push_message("고친 글", subtype="message_changed")
    await bot.chat.push_message("누구도 아닌", user_id="")
    await bot.chat.push_message("혼잣말", addressed=False)
    await bot.chat.push_message("다른 방", channel="elsewhere")
    assert bot.chat.pop_all() == [] and bot.seen == []
    await bot.chat.push_message("DM은 어디서나", channel="elsewhere", private=True)
    await bot.chat.push_message("한 번만", delivery_id="Ev1")
    await bot.chat.push_message("한 번만", delivery_id="Ev1")
    assert bot.chat.pop_all() == ["DM은 어디서나, 그렇군요", "한 번만, 그렇군요"]


async def test_allow_list_guilds_apply_to_discord_workspaces_only():
    allow = AllowList(guilds=("G1",))
    assert await allow.admit(Incoming("discord", "u", "hi", workspace="G1"))
    assert not await allow.admit(Incoming("discord", "u", "hi", workspace="G2"))
    assert await allow.admit(Incoming("discord", "u", "hi", workspace="G2", private=True))
    assert await allow.admit(Incoming("slack", "u", "hi", workspace="T1"))


async def test_teach_feedback_and_forget_with_confirmation(bot, store):
    await bot.chat.push_message("!teach")
    assert "사용법: !teach" in await bot.chat.pop_message()
    await bot.chat.push_message("!teach 미리 가르친 답")
    assert "찾지 못했어요" in await bot.chat.pop_message()  # nothing to correct yet
    await bot.chat.push_message("배고파")
    await bot.chat.pop_message()
    assert await bot.chat.react("good")
    assert not await bot.chat.react("bad", user_id="bob")  # not bob's exchange
    await bot.chat.push_message("!teach 밥 먹어요.")
    assert "배웠어요" in await bot.chat.pop_message()
    assert [(r[2], r[3]) for r in await store.training_rows()] == [(None, "good"), ("밥 먹어요.", "teach")]
    await bot.chat.push_message("!forget 확인")  # a confirmation nobody asked for deletes nothing
    assert "확인" in await bot.chat.pop_message()
    await bot.chat.push_message("!forget 확인")
    assert "1개" in await bot.chat.pop_message()
    assert await store.training_rows() == []


async def test_forget_confirmation_expires(store):
    now = [0.0]
    bot = Bot(store, commands=Commands(confirmations=ForgetConfirmations(60, timer=lambda: now[0])))
    await bot.worker.start()
    await bot.chat.push_message("안녕")
    await bot.chat.push_message("!forget")
    now[0] = 61.0
    await bot.chat.push_message("!forget 확인")  # too late: asks again
    now[0] = 70.0
    await bot.chat.push_message("!forget 확인")  # within 60 s of the second asking
    await bot.worker.stop()
    replies = bot.chat.pop_all()
    assert "60초" in replies[1] and "60초" in replies[2] and "1개" in replies[3]
    assert read_exchanges(store.path) == []


async def test_admin_reload_and_rate_limit(store):
    async def reload():
        return "모델을 바꿨어요."

    bot = Bot(store, limiter=RateLimiter(per_minute=1, burst=2), commands=Commands(("alice",), reload))
    await bot.worker.start()
    await bot.chat.push_message("!reload")
    await bot.chat.push_message("!reload", user_id="bob")  # not an admin: an ordinary message
    await bot.chat.push_message("하나")
    await bot.chat.push_message("둘")
    await bot.chat.push_message("셋")  # a burst of 2 (commands do not count)
    await bot.worker.stop()
    assert bot.chat.pop_all() == ["모델을 바꿨어요.", "!reload, 그렇군요", "하나, 그렇군요", "둘, 그렇군요",
                                  USER_TEXT[Outcome.RATE_LIMITED]]


async def test_without_a_store_redeliveries_are_still_answered_once_and_commands_say_so():
    bot = Bot(None)
    await bot.worker.start()
    await bot.chat.push_message("안녕", delivery_id="Ev9")
    await bot.chat.push_message("안녕", delivery_id="Ev9")
    await bot.chat.push_message("!teach 답")
    await bot.chat.push_message("파일", attachments=1)
    await bot.chat.push_message("", attachments=1)
    await bot.worker.stop()
    assert bot.chat.pop_all() == ["안녕, 그렇군요", TEACH_NONE, "파일, 그렇군요", ATTACHMENT_ONLY]
    assert not bot.pipeline.remembers
