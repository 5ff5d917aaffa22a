"""Taught answers: live for the teacher at once, for everyone once approved.

A bot that learns from the public without review is a well-known failure (one user teaches it to
insult everyone). So `/teach A` is answered with A for the teacher right away (their next message
with the same question, spacing and punctuation aside), and for other users only after an admin
approves it, or - when `teach_auto_approve` is on - once `teach_quorum` different users taught the
same answer to the same question. An approved pair also joins the model's answer bank, so questions
close to it (not only the same one) can get it. Answers that could harm anyone are refused outright.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from core_model.data import text_key
from core_model.text import normalize

MAX_ANSWER = 200
HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")
MASS_MENTION = re.compile(r"@(everyone|here)|<!(channel|here|everyone)|<@[!&]?\w+>", re.IGNORECASE)
LINK = re.compile(r"https?://|www\.|\b[\w-]+\.(com|net|org|io|kr|me|ly|gg)\b", re.IGNORECASE)


def refusal(answer: str) -> str | None:
    """Why a taught answer cannot be used (one Korean sentence for the user), or None when it can."""
    text = normalize(answer)
    letters = [c for c in text if c.isalpha()]
    if not text:
        return "가르쳐 줄 답을 함께 적어 주세요."
    if MASS_MENTION.search(answer):
        return "다른 사람을 부르는 멘션(@everyone, @here 등)이 들어간 답은 배울 수 없어요."
    if LINK.search(answer):
        return "링크가 들어간 답은 배울 수 없어요."
    if len(text) > MAX_ANSWER:
        return f"답이 너무 길어요. {MAX_ANSWER}자 이내로 줄여 주세요."
    if sum(bool(HANGUL.match(c)) for c in letters) < 0.5 * max(1, len(letters)):
        return "답은 한국어로 가르쳐 주세요."
    return None


@dataclass(frozen=True)
class TaughtPair:
    id: int
    platform: str
    user_id: str
    question: str
    answer: str
    status: str  # "pending" (only its teacher gets it), "approved" (everyone), "rejected"


class TaughtAnswers:
    """The taught pairs in memory, by normalized question: the teacher's own, and the approved ones."""

    def __init__(self, pairs: list[TaughtPair] = ()) -> None:
        self._pairs: dict[int, TaughtPair] = {}
        self._by_question: dict[str, dict[int, TaughtPair]] = {}  # normalized question -> its pairs by id
        for pair in pairs:
            self.add(pair)

    def add(self, pair: TaughtPair) -> None:
        self._pairs[pair.id] = pair
        self._by_question.setdefault(text_key(pair.question), {})[pair.id] = pair

    def remove_user(self, platform: str, user_id: str) -> list[TaughtPair]:
        """Forget a user's pairs; returns those that had been approved (to leave the live bank)."""
        gone = [p for p in self._pairs.values() if (p.platform, p.user_id) == (platform, user_id)]
        for p in gone:
            del self._pairs[p.id]
            del self._by_question[text_key(p.question)][p.id]
        return [p for p in gone if p.status == "approved"]

    def lookup(self, platform: str, user_id: str, text: str) -> str | None:
        """The teacher's own latest answer to this question, else the latest approved one."""
        key = text_key(text)
        if not key:
            return None
        mine = approved = None
        for p in sorted(self._by_question.get(key, {}).values(), key=lambda p: p.id):
            if p.status == "rejected":
                continue
            if (p.platform, p.user_id) == (platform, user_id):
                mine = p.answer
            if p.status == "approved":
                approved = p.answer
        return mine or approved

    def get(self, pair_id: int) -> TaughtPair | None:
        return self._pairs.get(pair_id)

    def pending(self) -> list[TaughtPair]:
        return sorted((p for p in self._pairs.values() if p.status == "pending"), key=lambda p: p.id)

    def approved(self) -> list[TaughtPair]:
        return sorted((p for p in self._pairs.values() if p.status == "approved"), key=lambda p: p.id)

    def reached_quorum(self, pair: TaughtPair, quorum: int) -> list[TaughtPair]:
        """The pending pairs with this question and answer, if at least `quorum` different users taught it."""
        same = [p for p in self._by_question.get(text_key(pair.question), {}).values()
                if p.status == "pending" and text_key(p.answer) == text_key(pair.answer)]
        return same if len({(p.platform, p.user_id) for p in same}) >= quorum else []
