"""The chat commands every platform offers, as text in and text out: teach, forget, admin reload.

Adapters recognize their platform's syntax (`!teach` on Discord, `/teach` slash commands) and set
`Incoming.command`; what the command does and what the user reads back is decided here, once.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cachetools import TTLCache

from bot.messages import Incoming

if TYPE_CHECKING:
    from bot.pipeline import Pipeline

FORGET_ASK = "정말 내 대화 기록을 모두 지울까요? 60초 안에 `{command} 확인` 을 보내 주세요."
FORGET_DONE = "대화 기록 {n}개와 평가를 모두 지웠어요."
TEACH_USAGE = "사용법: {command} <원했던 답>"
TEACH_DONE = "배웠어요! 다음 학습 때 반영할게요."
TEACH_NONE = "이 채널에서 고칠 대화를 찾지 못했어요. 먼저 저에게 말을 걸어 주세요."
ATTACHMENT_ONLY = "파일은 아직 읽을 수 없어요. 하고 싶은 말을 글로 적어 주세요."
CONFIRM_WORDS = ("확인", "confirm")


class ForgetConfirmations:
    """`forget` asks first; the same user confirming within `window_s` seconds goes ahead.

    Unconfirmed requests expire after the window (and at most `maxsize` are kept).
    """

    def __init__(self, window_s: float = 60.0, maxsize: int = 10_000, timer: Callable[[], float] | None = None) -> None:
        kwargs = {"timer": timer} if timer else {}
        self._asked: TTLCache = TTLCache(maxsize=maxsize, ttl=window_s, **kwargs)

    def ask(self, key: str) -> None:
        self._asked[key] = True

    def confirm(self, key: str) -> bool:
        return self._asked.pop(key, None) is not None


class Commands:
    """Runs `Incoming.command` for the pipeline; `admins` may reload the model through `on_reload`."""

    def __init__(self, admins: tuple[str, ...] = (), on_reload: Callable[[], Awaitable[str]] | None = None,
                 confirmations: ForgetConfirmations | None = None) -> None:
        self.admins = admins
        self.on_reload = on_reload
        self.confirmations = confirmations or ForgetConfirmations()

    async def run(self, pipeline: Pipeline, msg: Incoming) -> str | None:
        """The answer to the command in `msg`; None when it is not one (a non-admin's reload is chat)."""
        typed, _, arg = msg.text.strip().partition(" ")
        if msg.command == "teach":
            answer = arg.strip()
            if not answer:
                return TEACH_USAGE.format(command=typed)
            return TEACH_DONE if await pipeline.teach(msg.platform, msg.user_id, msg.channel, answer) else TEACH_NONE
        if msg.command == "forget":
            key = f"{msg.platform}:{msg.user_id}"
            if arg.strip() in CONFIRM_WORDS and self.confirmations.confirm(key):
                return FORGET_DONE.format(n=await pipeline.forget(msg.platform, msg.user_id))
            self.confirmations.ask(key)
            return FORGET_ASK.format(command=typed)
        if msg.command == "reload" and msg.user_id in self.admins and self.on_reload:
            return await self.on_reload()
        return None
