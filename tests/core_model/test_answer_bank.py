"""The answer bank: retrieval of similar training questions, its file, and no held-out pair in it."""
import json

import pytest

from core_model.answer_bank import AnswerBank
from tests.conftest import REPO, corpus_pairs


def test_nearest_finds_the_question_itself_first(tmp_path):
    pairs = corpus_pairs(200)
    bank = AnswerBank([p.q for p in pairs], [p.a for p in pairs])
    idx, sims = bank.nearest([pairs[17].q, pairs[150].q + "요"], 5)
    assert idx.shape == sims.shape == (2, 5)
    assert idx[0, 0] == 17 and sims[0, 0] == pytest.approx(1.0)
    assert idx[1, 0] == 150 and 0 < sims[1, 0] < 1
    assert (sims[:, :-1] >= sims[:, 1:]).all()  # most similar first
    assert bank.nearest(["아무거나"], 10_000)[0].shape == (1, 200)  # k beyond the bank is clamped
    assert bank.nearest(["😀"], 3)[1].max() == 0  # nothing in common: similarity 0


def test_from_pairs_keeps_repeats_once_and_round_trips(tmp_path):
    bank = AnswerBank.from_pairs([("안녕", "반가워요.", ["▁반가워요", "."]), ("안녕", "반가워요.", ["▁반가워요", "."]),
                                  ("잘 자", "좋은 꿈 꾸세요.", ["▁좋은", "▁꿈", "▁꾸세요", "."])])
    assert len(bank) == 2
    bank.save(tmp_path / "bank.json")
    again = AnswerBank.load(tmp_path / "bank.json")
    assert (again.questions, again.answers, again.answer_tokens) == (bank.questions, bank.answers, bank.answer_tokens)
    assert again.written == [False, False]
    with pytest.raises(ValueError):
        AnswerBank(["하나"], ["하나", "둘"])
    with pytest.raises(ValueError):
        AnswerBank([], [])


def test_written_pairs_are_marked_and_the_mark_is_kept(tmp_path):
    corpus = [("안녕", "반가워요.", None), ("잘 자", "좋은 꿈 꾸세요.", None)]
    written = [("안녕", "반가워요.", None), ("냉장고가 텅 비었어", "장 보러 한번 다녀와요.", None)]
    bank = AnswerBank.from_pairs(corpus, written)
    assert bank.questions == ["안녕", "잘 자", "냉장고가 텅 비었어"]
    assert bank.written == [False, False, True]  # a pair in both stays the corpus's
    bank.save(tmp_path / "bank.json")
    assert AnswerBank.load(tmp_path / "bank.json").written == [False, False, True]
    taught = bank.extended([("우리 고양이 이름은?", "나비예요.")])  # a person's answer, not written for the bank
    assert taught.written == [False, False, True, False] and bank.written == [False, False, True]
    old = json.loads((tmp_path / "bank.json").read_text(encoding="utf-8"))
    del old["written"]  # a bank.json from before written pairs: all the corpus's
    (tmp_path / "old.json").write_text(json.dumps(old, ensure_ascii=False), encoding="utf-8")
    assert AnswerBank.load(tmp_path / "old.json").written == [False, False, False]
    with pytest.raises(ValueError, match="written"):
        AnswerBank(["하나"], ["둘"], written=[True, False])


def test_the_shipped_bank_holds_no_held_out_pair():
    from core_model.data import read_pairs, split, text_key

    train, held = split(read_pairs(REPO / "data" / "ChatbotData.csv"))
    written = {(p.q, p.a) for p in read_pairs(REPO / "data" / "written_pairs.csv")}
    data = json.loads((REPO / "models" / "default" / "bank.json").read_text(encoding="utf-8"))
    rows = list(zip(data["questions"], data["answers"], data["written"]))
    corpus_pairs_ = {(q, a) for q, a, w in rows if not w}
    assert corpus_pairs_ == {(p.q, p.a) for p in train}
    assert {(q, a) for q, a, w in rows if w} == written - corpus_pairs_  # every written pair, marked
    held_q, held_a = {text_key(p.q) for p in held}, {p.a for p in held}
    assert not any(text_key(q) in held_q or a in held_a for q, a in corpus_pairs_)
    assert not any(text_key(q) in held_q for q, _ in written)  # no written answer to a held-out question
    assert len(data["answer_tokens"]) == len(data["answers"])
