"""Taught answers: live for the teacher at once, for everyone after review, refused when harmful, forgotten."""
import subprocess
import sys

import pytest

from adapters.inprocess import InProcessAdapter
from adapters.terminal import TerminalSession
from bot.commands import REVIEW_ADMIN_ONLY, Commands
from bot.pipeline import Pipeline
from bot.store import make_store
from bot.teaching import refusal
from bot.worker import InferenceWorker, WorkerConfig
from tests.conftest import REPO
from tests.fakes import FakeEngine

Q, A = "우리 고양이 이름이 뭐였지", "나비였어요."


def test_harmful_or_unusable_answers_are_refused_with_a_reason():
    assert refusal("나비였어요.") is None and refusal("좋아요! OK 😀") is None
    for mass_mention in ("@everyone 모여라", "<!channel> 다 와", "<@U1> 야"):
        assert "멘션" in refusal(mass_mention)
    assert "링크" in refusal("여기 보세요 https://example.com") and "링크" in refusal("spam.com 에 가요")
    assert "길어요" in refusal("가" * 201)
    assert "한국어" in refusal("you are stupid") and "적어" in refusal("  \u200b ")


class Daemonless:
    """Worker (a fake engine: '모델의 답'), store and pipeline, as the daemon wires them; restartable."""

    def __init__(self, path, **options):
        self.path, self.options = path, options

    async def start(self):
        self.engine = FakeEngine(lambda text: "모델의 답")
        self.worker = InferenceWorker("unused", WorkerConfig(batch_window_ms=0), engine_factory=lambda _: self.engine)
        await self.worker.start()
        self.store = await make_store(self.path).open()
        self.pipeline = Pipeline(self.worker, self.store, commands=Commands(admins=("admin",)), **self.options)
        await self.pipeline.load_taught()
        return self

    async def stop(self):
        await self.worker.stop()
        await self.store.close()


async def test_terminal_teach_is_live_for_the_teacher_and_global_after_approval(db_target):
    """On SQLite and on PostgreSQL."""
    bot = await Daemonless(db_target).start()
    me, other, admin = (TerminalSession(bot.pipeline, user) for user in ("me", "other", "admin"))
    assert await me.handle_line(Q) == "모델의 답"
    taught = await me.handle_line(f"/teach {A}")
    assert "배웠어요" in taught and "#1" in taught
    assert await me.handle_line(Q) == A and await me.handle_line(Q + "?!") == A  # at once, spacing aside
    assert await other.handle_line(Q) == "모델의 답"  # others: not before review
    assert bot.engine.extra_pairs == []
    await bot.stop()

    bot = await Daemonless(db_target).start()  # a restart on the same store
    me, other, admin = (TerminalSession(bot.pipeline, user) for user in ("me", "other", "admin"))
    assert await me.handle_line(Q) == A
    assert await other.handle_line(Q) == "모델의 답"
    assert await other.handle_line("/approve 1") == REVIEW_ADMIN_ONLY
    assert f"#1 {Q} -> {A}" in await admin.handle_line("/approve")  # the list of pending answers
    assert "승인" in await admin.handle_line("/approve 1")
    assert await other.handle_line(Q) == A
    assert bot.engine.extra_pairs == [(Q, A)]  # in the model's bank too: close questions can get it
    assert "4개" in await me.handle_line("/forget")  # the teacher's data goes, the taught pair with it
    assert await other.handle_line(Q) == "모델의 답" and bot.engine.extra_pairs == []
    await bot.stop()


async def test_a_taught_answer_never_replies_to_a_wish_to_die(tmp_path):
    """The responder answers "죽고 싶어" with care and a helpline; a taught answer must not get in first."""
    bot = await Daemonless(tmp_path / "chat.sqlite3").start()
    me = TerminalSession(bot.pipeline, "me")
    assert await me.handle_line("죽고 싶어") == "모델의 답"
    assert "배웠어요" in await me.handle_line("/teach 그래요.")
    assert await me.handle_line("죽고 싶어") == "모델의 답"  # the worker's reply, not the taught one
    assert await me.handle_line(Q) == "모델의 답"
    await bot.stop()


async def test_platform_commands_refuse_non_admins_and_harmful_answers(tmp_path):
    bot = await Daemonless(tmp_path / "db.sqlite3").start()
    chat = InProcessAdapter(bot.pipeline, user_id="alice")
    await chat.push_message(Q)
    assert await chat.pop_message() == "모델의 답"
    await chat.push_message("!teach @everyone 다 모여")
    assert "멘션" in await chat.pop_message()
    await chat.push_message("!teach 여기 https://spam.example 보세요")
    assert "링크" in await chat.pop_message()
    await chat.push_message(Q)
    assert await chat.pop_message() == "모델의 답"  # nothing was learned
    await chat.push_message(f"!teach {A}")
    assert "배웠어요" in await chat.pop_message()
    await chat.push_message("!approve 1")
    assert await chat.pop_message() == REVIEW_ADMIN_ONLY
    await chat.push_message("!approve 1", user_id="admin")
    assert "승인" in await chat.pop_message()
    await chat.push_message(Q, user_id="bob")
    assert await chat.pop_message() == A
    await bot.stop()


async def test_a_quorum_of_teachers_approves_automatically(tmp_path):
    bot = await Daemonless(tmp_path / "db.sqlite3", teach_quorum=3).start()
    chat = InProcessAdapter(bot.pipeline)
    for n, user in enumerate(("u1", "u2", "u3"), 1):
        await chat.push_message(Q, user_id=user)
        assert await chat.pop_message() == "모델의 답"
        await chat.push_message(f"!teach {A}", user_id=user)
        assert ("모두에게" in await chat.pop_message()) == (n == 3)
    await chat.push_message(Q, user_id="someone else")
    assert await chat.pop_message() == A and bot.engine.extra_pairs == [(Q, A)] * 3
    await bot.stop()


def test_chatbot_teach_lists_approves_and_rejects_from_the_command_line(tmp_path):
    import asyncio

    async def teach_one():
        bot = await Daemonless(tmp_path / "db.sqlite3").start()
        await TerminalSession(bot.pipeline, "me").handle_line(Q)
        await TerminalSession(bot.pipeline, "me").handle_line(f"/teach {A}")
        await bot.stop()

    asyncio.run(teach_one())

    def run(*args):
        return subprocess.run([sys.executable, "-m", "chatbot", "teach", *args, "--db", str(tmp_path / "db.sqlite3")],
                              cwd=REPO, capture_output=True, text=True, timeout=120)

    listed = run("list")
    assert listed.returncode == 0 and f"#1\tpending\tterminal:me\t{Q}\t->\t{A}" in listed.stdout
    assert run("approve", "7").returncode == 2 and "#7" in run("approve", "7").stderr
    assert run("approve").returncode == 2
    assert run("approve", "#1").returncode == 0
    assert run("list").stdout == "" and "approved" in run("list", "--all").stdout

    async def ask_other():
        bot = await Daemonless(tmp_path / "db.sqlite3").start()
        answer = await TerminalSession(bot.pipeline, "other").handle_line(Q)
        await bot.stop()
        return answer

    assert asyncio.run(ask_other()) == A


@pytest.mark.parametrize("answer", ["", "   "])
async def test_teach_without_an_answer_gets_the_usage(tmp_path, answer):
    bot = await Daemonless(tmp_path / "db.sqlite3").start()
    assert "사용법" in await TerminalSession(bot.pipeline, "me").handle_line(f"/teach {answer}")
    await bot.stop()
