"""Choosing a bank answer or the model's own reply, on a real (tiny) model and real files."""
import json
import shutil

import pytest

from core_model import artifacts
from core_model.answer_bank import AnswerBank
from core_model.responder import Responder
from core_model.scoring import SequenceScorer
from core_model.vocab import UNK_ID

WALK = [("오늘 날씨 좋다", "산책하기 좋은 날이에요."), ("날씨 너무 좋네", "산책 가기 좋은 날이네요."),
        ("오늘 날씨 최고다", "산책하기 딱 좋은 날이에요."), ("오늘 날씨 맑음", "@everyone 산책하기 좋은 날!")]


@pytest.fixture()
def walk_model(tiny_model_dir, tiny_responder, tmp_path):
    """The tiny model with a bank of weather answers it never trained on."""
    out = tmp_path / "walk"
    shutil.copytree(tiny_model_dir, out)
    tok = tiny_responder.tokenizer
    artifacts.attach_bank(out, AnswerBank.from_pairs([(q, a, tok.tokenize(a)) for q, a in WALK]), {"pairs": 4})
    return out


def test_the_model_scores_its_learned_answer_above_others(tiny_responder, tiny_pairs):
    r = tiny_responder
    scorer = SequenceScorer(r.loaded.model)
    q = [r.encode(p.q) for p in tiny_pairs[:6]]
    own = [r.loaded.vocab.encode(r.tokenizer.tokenize(p.a)) for p in tiny_pairs[:6]]
    other = own[1:] + own[:1]
    with_unk = own[0][:-1] + [UNK_ID]
    scores = scorer(q, [[mine, theirs] for mine, theirs in zip(own, other)])
    assert [s.shape for s in scores] == [(2,)] * 6
    assert all(mine > theirs for mine, theirs in scores) and all((s <= 0).all() for s in scores)
    assert scorer(q[:1], [[with_unk]])[0][0] < scores[0][0] - 5  # a word the model cannot say costs the penalty
    # Rows of one input may span two forward passes; an input may have no reply at all.
    many = scorer(q[:3], [[own[0]] * 100, [], [own[2]] * 100])
    assert [len(s) for s in many] == [100, 0, 100]
    assert many[0] == pytest.approx([scores[0][0]] * 100, abs=1e-4)
    assert many[2][-1] == pytest.approx(scores[2][0], abs=1e-4)
    assert scorer([], []) == []


def test_replies_come_from_the_bank_when_an_answer_fits(walk_model, tiny_responder):
    hybrid = Responder(walk_model, tokenizer=tiny_responder.tokenizer, beam_width=4)
    generate = Responder(walk_model, tokenizer=tiny_responder.tokenizer, beam_width=4, answer_bank=False)
    assert generate.ranker is None and hybrid.ranker is not None
    question = "오늘 날씨 진짜 좋다"
    replies = hybrid.replies([hybrid.prepare(t) for t in (question, "😀", "")])
    assert replies[0].text in {a for _, a in WALK[:3]} | {"산책하기 좋은 날!"} and replies[0].source == "bank"
    assert replies[0].text != generate.reply(question)  # the tiny model only knows its own 50 answers
    # Nothing in the bank fits: the model's own words, exactly as generation alone gives them.
    assert [r.source for r in replies[1:]] == ["model", "model"]
    assert [r.text for r in replies[1:]] == generate.reply_batch(["😀", ""])
    assert hybrid.reply_prepared([hybrid.prepare(question)]) == [(replies[0].text, "bank")]


def test_a_question_the_bank_holds_gets_its_answer(walk_model, tiny_responder):
    hybrid = Responder(walk_model, tokenizer=tiny_responder.tokenizer)
    assert hybrid.reply_batch(["오늘 날씨 좋다", "날씨 너무 좋네!", "오늘날씨최고다"]) == \
        ["산책하기 좋은 날이에요.", "산책 가기 좋은 날이네요.", "산책하기 딱 좋은 날이에요."]


def test_bank_answers_cannot_ping(walk_model, tiny_responder):
    hybrid = Responder(walk_model, tokenizer=tiny_responder.tokenizer)
    for reply in hybrid.reply_batch(["오늘 날씨 맑음"] * 3 + ["@everyone 날씨 맑음"]):
        assert "@everyone" not in reply


def test_the_bank_is_pinned_by_the_manifest(walk_model):
    manifest = json.loads((walk_model / "manifest.json").read_text())
    assert set(manifest["files"]) == {"model.weights.h5", "vocab.json", "bank.json", "selector.weights.h5",
                                      "selector.json"}
    bank = walk_model / "bank.json"
    bank.write_text(bank.read_text().replace("산책", "낮잠"), encoding="utf-8")
    with pytest.raises(artifacts.ModelLoadError, match="bank.json does not match"):
        artifacts.load(walk_model)
    bank.unlink()
    with pytest.raises(artifacts.ModelLoadError, match="missing bank.json"):
        artifacts.load(walk_model)


def test_extra_pairs_join_the_bank_live_and_leave_it(walk_model, tiny_responder):
    hybrid = Responder(walk_model, tokenizer=tiny_responder.tokenizer)
    question = "우리 고양이 이름이 뭐였지"
    before = hybrid.reply(question)
    hybrid.set_extra_pairs([(question, "나비였어요.")])
    assert hybrid.reply(question + "?") == "나비였어요." and len(hybrid.ranker.bank) == len(WALK) + 1
    assert hybrid.reply("오늘 날씨 좋다") == "산책하기 좋은 날이에요."  # the model's own bank still answers
    hybrid.set_extra_pairs([])
    assert hybrid.reply(question) == before and len(hybrid.ranker.bank) == len(WALK)
    generate = Responder(walk_model, tokenizer=tiny_responder.tokenizer, answer_bank=False)
    generate.set_extra_pairs([(question, "나비였어요.")])  # no bank in use: nothing changes
    assert generate.ranker is None


def test_acknowledgements_never_assume_an_event_after_a_question(walk_model, tiny_responder, monkeypatch):
    """Below the acknowledgement threshold a question gets a question's acknowledgement ("그런 일이
    있었군요" after "오늘 비 온대?" was rated unfit), a message in a situation one that says it back; a
    question the bank holds still gets its answer."""
    from core_model import acknowledgements as acks
    from core_model import responder

    monkeypatch.setattr(responder, "GENERATE_BELOW", -1e9)
    monkeypatch.setattr(responder, "ACKNOWLEDGE_BELOW", 1e9)  # every message below: acknowledged
    hybrid = Responder(walk_model, tokenizer=tiny_responder.tokenizer)
    messages = ("오늘 비 온대?", "주말에 뭐하지", "산책 다녀왔어", "발목 삐끗했어", "요즘 너무 우울해",
                "라면 끓일까 말까ㅋㅋ", "오늘 날씨 좋다")
    replies = hybrid.replies([hybrid.prepare(t) for t in messages])
    assert [r.source for r in replies] == ["acknowledgement"] * 6 + ["bank"]
    assert all(r.text in acks.QUESTION_ACKNOWLEDGEMENTS for r in replies[:2])
    assert replies[2].text in acks.ACKNOWLEDGEMENTS
    assert replies[3].text in acks.PAIN.phrases and replies[4].text in acks.HARD.phrases
    assert replies[5].text in acks.QUESTION_ACKNOWLEDGEMENTS  # a decision: as generic as it gets
    assert replies[6].text == "산책하기 좋은 날이에요."
    assert [acks.is_question(t) for t in ("자야지", "배고파ㅠㅠ", "너 뭐해 ㅋㅋ", "어떡해...")] == \
        [False, False, True, True]


def test_a_message_in_a_situation_is_acknowledged_up_to_its_own_threshold(walk_model, tiny_responder, monkeypatch):
    """Between the two thresholds a message in a situation gets its acknowledgement, any other message
    the best bank answer."""
    from core_model import acknowledgements as acks
    from core_model import responder

    hybrid = Responder(walk_model, tokenizer=tiny_responder.tokenizer)
    messages = ("발목 삐끗했어", "산책 다녀왔어")
    scores = hybrid.ranker.best(list(messages))[1]
    monkeypatch.setattr(responder, "GENERATE_BELOW", -1e9)
    monkeypatch.setattr(responder, "ACKNOWLEDGE_BELOW", float(min(scores)) - 1)  # nobody below
    monkeypatch.setattr(responder, "SITUATION_ACKNOWLEDGE_BELOW", float(max(scores)) + 1)  # everybody below
    pain, plain = hybrid.replies([hybrid.prepare(t) for t in messages])
    assert pain.source == "acknowledgement" and pain.text in acks.PAIN.phrases
    assert plain.source == "bank" and plain.text in hybrid.ranker.bank.answers


def test_a_wish_to_die_is_met_with_care_whatever_the_bank_holds(walk_model, tiny_responder):
    """Not a bank answer, not a cheer for a wish ("사라지고 싶어" once got "그렇게 되길 저도 바랄게요."), not
    the model's own words: care and a helpline, even where the bank holds the very question."""
    from core_model import acknowledgements as acks

    hybrid = Responder(walk_model, tokenizer=tiny_responder.tokenizer)
    hybrid.set_extra_pairs([("죽고 싶어", "그래요.")])
    messages = ("죽고 싶어", "사라지고 싶어", "그냥 살기 싫다", "자해하면 안 될까?", "외제차 갖고 싶다")
    replies = hybrid.replies([hybrid.prepare(t) for t in messages])
    assert all(r.source == "acknowledgement" and r.text in acks.DISTRESS.phrases for r in replies[:4])
    assert "109" in acks.DISTRESS.phrases[0] and replies[4].text not in acks.DISTRESS.phrases
    assert [getattr(acks.situation(t), "name", None) for t in ("보고 싶어", "애기 안 갖고 싶어", "도망가고 싶다")] \
        == [None, None, None]  # missing someone, not wanting, wanting out: no wish to cheer on


def test_each_situation_is_recognised_and_near_misses_are_not():
    """Messages the bank often has no fitting answer for, each in its situation; words that look alike
    but mean something else ("아파트", "헤어스타일", "재미없어", "시험 끝났다") stay generic."""
    from core_model import acknowledgements as acks

    said = {"머리 아파서 일찍 자야겠어": "pain", "계속 속이 진짜 안 좋아": "pain", "아이고 추워라": "cold",
            "생각없이 상처줬어": "regret", "내가 왜 고집부렸을까": "regret", "솔직히 말하면 헤어지고 싶어": "want out",
            "나를 너무 함부로 대해": "hurt", "사진 다 지우진 못하겠네": "breakup", "사는 게 허무해요": "hard feeling",
            "컴터 고장났나봐": "a mishap", "오늘 상 받았다": "good news", "술을 끊어야겠어.": "plan",
            "외제차 갖고 싶다": "wish", "여름에는 냉면이지": "a taste", "요리하는게 재밌어": "joy",
            "데이트중에 정적 있어도 괜찮을까?": "is it all right", "헤어지자고 말할까": None,
            "동거하다가 헤어질까봐 걱정이야": None, "시간 잘 간다": None, "아파트 샀어": None,
            "헤어스타일 바꿨어": None, "마음이 아파": "hard feeling", "썸은 좋았는데 연애는 별로": None,
            "다른 사람은 다 행복해보여": None, "완전 재미 없거든": None, "시험 끝났다!": None,
            "왜 이렇게 피곤하지?": None}
    assert {text: getattr(acks.situation(text), "name", None) for text in said} == said
    assert acks.acknowledgements("왜 이렇게 피곤하지?") == acks.QUESTION_ACKNOWLEDGEMENTS
    assert acks.acknowledgements("헤어스타일 바꿨어") == acks.ACKNOWLEDGEMENTS
    assert acks.acknowledgements("오늘 상 받았다") == acks.PROUD.phrases
    every = [*acks.STATEMENTS, *acks.QUESTIONS]
    assert len({s.name for s in every}) == len(set(every))  # names tell them apart in reports


def test_the_ranking_puts_the_best_answer_first(walk_model, tiny_responder):
    ranker = Responder(walk_model, tokenizer=tiny_responder.tokenizer).ranker
    messages = ["오늘 날씨 진짜 좋다", "산책 가자"]
    best, scores = ranker.best(messages)
    ranked = ranker.ranked(messages)
    assert ranked.shape == (2, len(WALK)) and list(ranked[:, 0]) == list(best)
    assert all(sorted(row) == list(range(len(WALK))) for row in ranked.tolist())


def test_a_written_answer_counts_less_toward_answering_at_all(walk_model, tiny_responder):
    """Written answers say their own question back, which flatters their score: whether the bank can answer
    counts them `WRITTEN_GATE_MARGIN` lower; which answer is sent is still the best by the full score."""
    from core_model.ranking import WRITTEN_GATE_MARGIN, AnswerRanker

    selector = Responder(walk_model, tokenizer=tiny_responder.tokenizer).loaded.selector
    triples = [(q, a, None) for q, a in WALK]
    messages = ["오늘 날씨 진짜 좋다", "산책 가자"]
    as_corpus = AnswerRanker(AnswerBank.from_pairs(triples), selector).best(messages)
    as_written = AnswerRanker(AnswerBank.from_pairs([], triples), selector).best(messages)
    assert list(as_written[0]) == list(as_corpus[0])
    assert as_written[1] == pytest.approx(as_corpus[1] - WRITTEN_GATE_MARGIN, abs=1e-5)
    mixed = AnswerRanker(AnswerBank.from_pairs(triples[:1], triples[1:]), selector)
    nearest, total = mixed._shortlist(messages)
    offset = WRITTEN_GATE_MARGIN * (nearest > 0)  # bank index 0 is the corpus pair
    assert list(mixed.best(messages)[0]) == list(nearest[range(2), total.argmax(1)])
    assert mixed.best(messages)[1] == pytest.approx((total - offset).max(1), abs=1e-5)
