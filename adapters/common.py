"""Small pieces every chat adapter shares: allow-lists, message splitting, the forget confirmation."""
from __future__ import annotations

import time


def allowed(allow_list: tuple[str, ...], *ids: str | int | None) -> bool:
    """An empty allow-list allows everything; otherwise one of `ids` must be on it."""
    return not allow_list or any(i is not None and str(i) in allow_list for i in ids)


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into pieces of at most `limit` characters, preferring to cut at spaces."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit)
        cut = cut if cut > limit // 2 else limit
        pieces.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return pieces + ([text] if text else [])


class ForgetConfirmations:
    """`forget` asks first; the same user confirming within `window_s` seconds goes ahead."""

    def __init__(self, window_s: float = 60.0) -> None:
        self.window_s = window_s
        self._asked: dict[str, float] = {}

    def ask(self, key: str) -> None:
        self._asked[key] = time.monotonic()

    def confirm(self, key: str) -> bool:
        asked = self._asked.pop(key, None)
        return asked is not None and time.monotonic() - asked <= self.window_s


FORGET_ASK = "정말 내 대화 기록을 모두 지울까요? 60초 안에 `{command} 확인` 을 보내 주세요."
FORGET_DONE = "대화 기록 {n}개와 평가를 모두 지웠어요."
TEACH_USAGE = "사용법: {command} <원했던 답>"
TEACH_DONE = "배웠어요! 다음 학습 때 반영할게요."
TEACH_NONE = "이 채널에서 고칠 대화를 찾지 못했어요. 먼저 저에게 말을 걸어 주세요."
ATTACHMENT_ONLY = "파일은 아직 읽을 수 없어요. 하고 싶은 말을 글로 적어 주세요."
