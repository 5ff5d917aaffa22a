"""Training pairs: reading ChatbotData-format CSV files and the leak-free held-out split."""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from core_model.text import normalize

REQUIRED_COLUMNS = ("Q", "A")
HELDOUT_SHARE = 0.10
SPLIT_SEED = "chatbot-split-v1"
DEV_SHARE = 0.05  # of the training side: picks the epoch and settings, so the held-out split stays unseen
DEV_SEED = "chatbot-dev-v1"


class DataError(ValueError):
    """A training file that cannot be used; the message is one line, meant for the user."""


@dataclass(frozen=True)
class Pair:
    q: str
    a: str
    label: str = "0"


def read_pairs(path: str | Path) -> list[Pair]:
    """Read a CSV with columns Q, A (and optionally label); texts are normalized, empty rows skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8 CSV") from exc
    if not text.strip():
        raise DataError(f"{path}: the file is empty; expected a CSV with columns Q,A,label")
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}")
    pairs = []
    for row in reader:
        q, a = normalize(row.get("Q")), normalize(row.get("A"))
        if q and a:
            pairs.append(Pair(q, a, (row.get("label") or "0").strip() or "0"))
    if not pairs:
        raise DataError(f"{path}: no rows with both Q and A")
    return pairs


def write_pairs(path: str | Path, pairs: list[Pair]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Q", "A", "label"])
        writer.writerows((p.q, p.a, p.label) for p in pairs)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def text_key(text: str) -> str:
    """Near-identical texts share a key: spacing and punctuation do not count."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def is_heldout(pairs: list[Pair], share: float = HELDOUT_SHARE, salt: str = SPLIT_SEED) -> list[bool]:
    """Which pairs belong to the held-out split (`share`, 10%), the same answer every time.

    Pairs that share a normalized question or a normalized answer are joined into one group
    (union-find), and a whole group goes to one side by a hash of its smallest key. Repeated and
    near-identical questions therefore never sit on both sides, so held-out scores measure
    generalization, not memory. The split depends only on the texts, not on row order.
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for p in pairs:
        a, b = find("q:" + text_key(p.q)), find("a:" + text_key(p.a))
        if a != b:
            parent[max(a, b)] = min(a, b)
    members: dict[str, str] = {}
    for p in pairs:
        root = find("q:" + text_key(p.q))
        members[root] = min(members.get(root, root), "q:" + text_key(p.q))
    out = []
    for p in pairs:
        digest = hashlib.sha256((salt + members[find("q:" + text_key(p.q))]).encode()).digest()
        out.append(int.from_bytes(digest[:8], "big") / 2**64 < share)
    return out


def split(pairs: list[Pair], share: float = HELDOUT_SHARE, salt: str = SPLIT_SEED
          ) -> tuple[list[Pair], list[Pair]]:
    """-> (training pairs, held-out pairs). `dev_split` uses it again on the training side."""
    flags = is_heldout(pairs, share, salt)
    return [p for p, h in zip(pairs, flags) if not h], [p for p, h in zip(pairs, flags) if h]


def dev_split(train_pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
    """Training pairs -> (pairs to fit, development pairs that choose the epoch), leak-free as above."""
    return split(train_pairs, DEV_SHARE, DEV_SEED)
