"""Okt tokens that remember word boundaries, so replies come back spaced as written.

A token that starts a new word (was preceded by a space) carries the prefix `▁`, as in
SentencePiece: "하루가 또 가네요." -> ["▁하루", "가", "▁또", "▁가네요", "."].
`detokenize` turns the marks back into spaces.

KoNLPy runs Okt in a JVM through JPype. The JVM is started once per process (on the thread that
first builds a Tokenizer: call `Tokenizer()` on the main thread at start-up) and Okt is only ever
entered by one thread at a time (a lock), since concurrent calls can crash the JVM.
"""
from __future__ import annotations

import threading
from collections.abc import Iterable

from core_model.text import normalize

SPACE = "\u2581"  # ▁
JVM_MAX_HEAP_MB = 512
"""KoNLPy's default JVM heap (1 GB) lets the in-process JVM grow to ~660 MB resident while tagging
12k sentences in a row (as training does); 512 MB keeps it at ~440 MB at the same speed (256 MB: ~370
MB, but 27% slower). In the daemon, where tagging is interleaved with decoding, the peak resident
memory over 11.8k replies was about the same either way (1,371-1,413 vs 1,377-1,461 MB)."""
_lock = threading.Lock()
_okt = None


def _get_okt():
    global _okt
    with _lock:
        if _okt is None:
            try:
                from konlpy.tag import Okt
            except ImportError as exc:  # pragma: no cover - dependency missing
                raise RuntimeError("konlpy is not installed: run `make install`") from exc
            try:
                _okt = Okt(max_heap_size=JVM_MAX_HEAP_MB)
            except Exception as exc:  # JVM missing or broken
                raise RuntimeError(
                    f"could not start the Java VM for KoNLPy ({exc}); install Java 17 (JRE) and retry"
                ) from exc
        return _okt


class Tokenizer:
    """Normalize, then split into Okt morphemes with `▁` word-start marks."""

    def __init__(self) -> None:
        self._okt = _get_okt()

    def tokenize(self, text: str) -> list[str]:
        text = normalize(text)
        if not text:
            return []
        with _lock:
            morphs = self._okt.morphs(text)
        return _mark_word_starts(text, morphs)


def _mark_word_starts(text: str, morphs: list[str]) -> list[str]:
    """Align Okt's morphemes with `text` and prefix those that begin a word with `▁`."""
    tokens: list[str] = []
    cursor = 0
    for morph in morphs:
        morph = morph.replace(" ", "")
        if not morph:
            continue
        found = text.find(morph, cursor)
        if found < 0:  # Okt changed the surface form; treat it as following what came before
            gap = text[cursor:cursor + 1]
            starts_word = not tokens or gap == " "
            cursor += len(morph)
        else:
            starts_word = not tokens or " " in text[cursor:found]
            cursor = found + len(morph)
        tokens.append(SPACE + morph if starts_word else morph)
    return tokens


def detokenize(tokens: Iterable[str]) -> str:
    """Join tokens, turning `▁` word-start marks back into single spaces."""
    return "".join(tokens).replace(SPACE, " ").strip()


def start_jvm() -> None:
    """Start the JVM now, on the calling thread (call it from the main thread at start-up)."""
    _get_okt()
