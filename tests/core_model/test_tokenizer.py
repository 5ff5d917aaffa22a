from core_model.data import read_pairs
from core_model.text import normalize
from core_model.tokenizer import SPACE, Tokenizer, detokenize
from tests.conftest import CORPUS


def test_word_boundaries_are_kept():
    tok = Tokenizer()
    tokens = tok.tokenize("하루가 또 가네요.")
    assert tokens == [SPACE + "하루", "가", SPACE + "또", SPACE + "가네요", "."]
    assert detokenize(tokens) == "하루가 또 가네요."


def test_hostile_inputs_tokenize():
    tok = Tokenizer()
    assert tok.tokenize("") == []
    assert tok.tokenize("\x00\u200b  ") == []
    assert detokenize(tok.tokenize("😀😀😀")) == "😀😀😀"
    assert len(tok.tokenize("ㅋ" * 100_000)) < 600  # capped before tagging


def test_round_trip_share_on_all_chatbotdata_answers():
    tok = Tokenizer()
    answers = sorted({p.a for p in read_pairs(CORPUS)})
    same = sum(detokenize(tok.tokenize(a)) == normalize(a) for a in answers)
    share = same / len(answers)
    print(f"round trip: {same}/{len(answers)} = {share:.4f}")
    assert share >= 0.99


def test_the_jvm_heap_is_capped():
    """With KoNLPy's default 1 GB heap the in-process JVM grows ~220 MB more while tagging many sentences in a row."""
    import jpype

    from core_model.tokenizer import JVM_MAX_HEAP_MB

    Tokenizer()
    max_heap_mb = jpype.java.lang.Runtime.getRuntime().maxMemory() / 2**20
    assert 0.8 * JVM_MAX_HEAP_MB <= max_heap_mb <= JVM_MAX_HEAP_MB
