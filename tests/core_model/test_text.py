from hypothesis import given, settings
from hypothesis import strategies as st

from core_model.text import MAX_CHARS, has_mention_or_link, neutralize_mentions, normalize


def test_normalize_hostile_inputs():
    assert normalize(None) == ""
    assert normalize("") == ""
    assert normalize("  \t\n ") == ""
    assert normalize("안녕\u200b하세요\ufeff") == "안녕하세요"
    assert normalize("a\x00b\x07c\x1b[31m") == "abc[31m"
    assert normalize("줄\n바꿈\t\t탭   공백") == "줄 바꿈 탭 공백"
    assert normalize("\ud800외톨이") == "\ufffd외톨이"
    assert normalize(b"\xff\xfe\xed bytes") == "\ufffd\ufffd\ufffd bytes"
    assert normalize("ｈｅｌｌｏ１２") == "hello12"  # NFKC folds full-width forms
    assert normalize("가" * 100_000) == "가" * MAX_CHARS
    assert normalize("😀😀") == "😀😀"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(), max_size=2000))
def test_normalize_is_clean_and_idempotent(s):
    out = normalize(s)
    assert len(out) <= MAX_CHARS
    assert out == out.strip()
    assert "  " not in out
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in out)
    assert not any(ord(c) < 32 or c == "\x7f" for c in out)
    out.encode("utf-8")  # always encodable
    assert normalize(out) == out


def test_neutralize_mentions():
    for hostile in ("@everyone 모여", "@here", "@Channel", "<!channel>", "<!here>", "<!everyone>",
                    "<@U123>", "<@&456>", "<#C1>"):
        safe = neutralize_mentions(hostile)
        assert "@everyone" not in safe.lower() and "@here" not in safe.lower() and "@channel" not in safe.lower()
        assert "<!" not in safe and "<@" not in safe and "<#" not in safe
    assert neutralize_mentions("평범한 문장이에요.") == "평범한 문장이에요."


def test_has_mention_or_link():
    assert has_mention_or_link("see https://example.com")
    assert has_mention_or_link("hi @someone")
    assert has_mention_or_link("<@U1> hello")
    assert not has_mention_or_link("오늘 날씨 좋다")
