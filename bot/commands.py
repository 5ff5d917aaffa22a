"""The chat commands every platform offers, as text in and text out: teach, forget, admin reload.

Adapters recognize their platform's syntax (`!teach` on Discord, `/teach` slash commands) and set
`Incoming.command`; what the command does and what the user reads back is decided here, once.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cachetools import TTLCache

from bot.messages import Incoming
from bot.teaching import refusal

if TYPE_CHECKING:
    from bot.pipeline import Pipeline

FORGET_ASK = "정말 내 대화 기록을 모두 지울까요? 60초 안에 `{command} 확인` 을 보내 주세요."
FORGET_DONE = "대화 기록 {n}개와 평가를 모두 지웠어요."
TEACH_USAGE = "사용법: {command} <원했던 답>"
TEACH_DONE = "배웠어요! 이제 같은 말에는 이렇게 답할게요. 다른 분들께는 관리자가 확인한 뒤에 적용돼요. (#{id})"
TEACH_SHARED = "배웠어요! 여러 분이 같은 답을 알려 주셔서 이제 모두에게 이렇게 답할게요. (#{id})"
REVIEW_USAGE = "사용법: {command} <번호> (배운 답 목록: {command} 만 보내기)"
REVIEW_ADMIN_ONLY = "관리자만 배운 답을 승인하거나 거절할 수 있어요."
REVIEW_DONE = {"approved": "#{ids} 승인했어요. 이제 모두에게 이렇게 답해요.", "rejected": "#{ids} 거절했어요."}
REVIEW_NONE = "검토를 기다리는 배운 답이 없어요."
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
            if (why := refusal(answer)) is not None:
                return why
            pair = await pipeline.teach(msg.platform, msg.user_id, msg.channel, answer)
            if pair is None:
                return TEACH_NONE
            return (TEACH_SHARED if pair.status == "approved" else TEACH_DONE).format(id=pair.id)
        if msg.command in ("approve", "reject"):
            return await self._review(pipeline, msg, typed, arg)
        if msg.command == "forget":
            key = f"{msg.platform}:{msg.user_id}"
            if arg.strip() in CONFIRM_WORDS and self.confirmations.confirm(key):
                return FORGET_DONE.format(n=await pipeline.forget(msg.platform, msg.user_id))
            self.confirmations.ask(key)
            return FORGET_ASK.format(command=typed)
        if msg.command == "reload" and msg.user_id in self.admins and self.on_reload:
            return await self.on_reload()
        return None

    async def _review(self, pipeline: Pipeline, msg: Incoming, typed: str, arg: str) -> str:
        """`approve ID...` / `reject ID...` by an admin; with no id, the list of pending taught answers."""
        if msg.user_id not in self.admins:
            return REVIEW_ADMIN_ONLY
        if not arg.strip():
            pending = pipeline.taught.pending()
            return "\n".join(f"#{p.id} {p.question} -> {p.answer}" for p in pending[:20]) or REVIEW_NONE
        ids = [int(x.lstrip("#")) for x in arg.replace(",", " ").split() if x.lstrip("#").isdigit()]
        if not ids:
            return REVIEW_USAGE.format(command=typed)
        status = "approved" if msg.command == "approve" else "rejected"
        changed = await pipeline.review(ids, status, f"{msg.platform}:{msg.user_id}")
        return REVIEW_DONE[status].format(ids=", #".join(map(str, ids))) if changed else REVIEW_NONE
