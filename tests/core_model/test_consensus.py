"""The consensus choice: its chrF is sacrebleu's, and it picks what the likely candidates agree on."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sacrebleu.metrics import CHRF

from core_model.consensus import choose, chrf_matrix

korean = st.text(alphabet=st.sampled_from(list("가나다라하루요세 .?!abc")), max_size=30)


@settings(max_examples=60, deadline=None)
@given(st.lists(korean, min_size=1, max_size=5))
def test_chrf_matrix_is_sacrebleus_sentence_chrf(texts):
    chrf = CHRF()
    matrix = chrf_matrix(texts)
    for a, hyp in enumerate(texts):
        for b, ref in enumerate(texts):
            assert matrix[a, b] == pytest.approx(chrf.sentence_score(hyp, [ref]).score, abs=1e-9)


def test_chrf_matrix_on_real_answers():
    from tests.conftest import corpus_pairs

    answers = [p.a for p in corpus_pairs(12)]
    chrf, matrix = CHRF(), chrf_matrix(answers)
    assert matrix.shape == (12, 12)
    assert all(matrix[i, i] == pytest.approx(100.0) for i in range(12))
    assert matrix[3, 7] == pytest.approx(chrf.sentence_score(answers[3], [answers[7]]).score)


def test_choose_takes_what_the_others_agree_on():
    texts = ["산책하기 좋은 날이에요.", "바나나 우유", "산책 가기 좋은 날이네요.", "산책하기 딱 좋은 날이에요."]
    assert choose(texts, [0.0, 0.0, 0.0, 0.0]) in (0, 2, 3)
    assert choose(["혼자"], [-3.0]) == 0


def test_choose_follows_the_models_beliefs():
    # Two camps; the model believes in the second one, so a member of it is chosen.
    texts = ["좋은 하루 보내세요.", "좋은 하루 되세요.", "밥은 먹었어요?", "밥은 꼭 챙겨 먹어요."]
    assert choose(texts, [-9.0, -9.0, -0.5, -0.5]) in (2, 3)
    assert choose(texts, [-0.5, -0.5, -9.0, -9.0]) in (0, 1)
