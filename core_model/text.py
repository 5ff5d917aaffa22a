"""Text normalization and reply safety: the one gate every entry point passes text through."""
from __future__ import annotations

import re
import unicodedata

MAX_CHARS = 500

# Zero-width and bidi/format characters that render as nothing but break tokenization.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\u00ad]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")


def normalize(text: str | bytes | None, max_chars: int = MAX_CHARS) -> str:
    """Return `text` as clean NFKC Unicode, safe to tokenize and store.

    Bytes are decoded as UTF-8 with replacement; lone surrogates become U+FFFD; zero-width and
    control characters are removed (tabs and newlines become spaces); whitespace is collapsed;
    the result is capped at `max_chars` characters so pathological input stays cheap.
    """
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    text = text[: max_chars * 8]  # bound the work below: a 100,000-character message costs no more
    text = _SURROGATE.sub("\ufffd", text)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    text = _WHITESPACE.sub(" ", text).strip()
    return text[:max_chars].rstrip()


# Anything that could notify many people (or one) on Discord or Slack.
_MASS_MENTION = re.compile(r"@(everyone|here|channel)\b", re.IGNORECASE)
_ANGLE_MENTION = re.compile(r"<(?:[@#!]|@&)[^<>]*>")


def neutralize_mentions(text: str) -> str:
    """Make `@everyone`, `@here`, `<!channel>`, `<@id>`, `<@&role>` inert whatever the model produced.

    A zero-width joiner after '@' keeps the text readable while no platform parses it as a mention;
    angle-bracket mentions lose their brackets.
    """
    text = _ANGLE_MENTION.sub(lambda m: m.group(0)[1:-1].replace("@", "@\u2060").replace("!", "!\u2060"), text)
    return _MASS_MENTION.sub(lambda m: "@\u2060" + m.group(1), text)


def has_mention_or_link(text: str) -> bool:
    """True when `text` contains a mention or a URL (such texts are not used as training pairs)."""
    return bool(
        _MASS_MENTION.search(text)
        or _ANGLE_MENTION.search(text)
        or re.search(r"@\w", text)
        or re.search(r"(https?://|www\.)\S", text, re.IGNORECASE)
    )
