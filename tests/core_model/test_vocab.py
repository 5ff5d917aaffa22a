import pytest

from core_model.vocab import EOS_ID, SPECIALS, UNK_ID, Vocab


def test_build_orders_by_frequency_and_respects_limits(tmp_path):
    sents = [["▁가", "나"], ["▁가", "다"], ["▁가", "나"], ["라"]]
    v = Vocab.build(sents, max_size=6, min_count=1)
    assert v.tokens[:4] == SPECIALS
    assert v.tokens[4:] == ("▁가", "나")
    assert Vocab.build(sents, max_size=100, min_count=2).tokens[4:] == ("▁가", "나")
    v.save(tmp_path / "v.json")
    assert Vocab.load(tmp_path / "v.json") == v


def test_encode_decode():
    v = Vocab(SPECIALS + ("▁안녕", "하세요"))
    ids = v.encode(["▁안녕", "하세요", "모름"], add_eos=True)
    assert ids == [4, 5, UNK_ID, EOS_ID]
    assert v.decode(ids) == ["▁안녕", "하세요"]  # <unk> and specials never come back as text
    assert v.encode(["▁안녕"] * 10, max_len=3, add_eos=True) == [4, 4, EOS_ID]
    assert v.coverage([["▁안녕", "모름"]]) == 0.5


def test_specials_are_required():
    with pytest.raises(ValueError):
        Vocab(("a", "b"))
