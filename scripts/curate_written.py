"""Curate answers written for the answer bank by this project's team.

ChatbotData's answers are often terse or fit only the one question they were written for ("비행기 타러
간다" -> "저도 배워보고 싶어요."), and whole everyday situations are missing from it. So the team wrote
(in 2026, briefed as data/written_pairs.md says) two kinds of pairs:
- `--answers DIR...`: a second answer to each training-side ChatbotData question (DIR/questions.tsv
  `id<TAB>message`, DIR/answers.tsv `id<TAB>reply`);
- `--new FILE...`: new messages with their answers (`Q<TAB>A`), one file per topic area, `--labels`
  giving each file's ChatbotData label (0 everyday, 1 breakup/sadness, 2 love).

`python -m scripts.curate_written --answers ... --new ... --labels ... --out data/written_pairs.csv`
keeps a pair only if both sides are short, mostly Korean and carry no link or mention, and its
message is not a wish to die, nor its answer the helpline's (such messages get care from the responder,
never a bank answer). A new message
must also not be, nor nearly be (TF-IDF cosine of character n-grams >= `NEAR`), a message that
measures the bot: a held-out or dev question of ChatbotData or a message of data/everyday.txt; and
no earlier pair may have the same message. A second answer's question is a training-side question
by construction. It prints the counts kept and dropped (and why) as JSON.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

NEAR = 0.9
MAX_MESSAGE, MAX_REPLY = 60, 80
LINK = re.compile(r"https?://|www\.|@|<[!#@]", re.IGNORECASE)
HANGUL = re.compile(r"[가-힣ㄱ-ㅎㅏ-ㅣ]")


def mostly_korean(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(bool(HANGUL.match(c)) for c in letters) >= 0.7 * len(letters)


def read_tsv(path: Path) -> list[list[str]]:
    """Rows after the header line, split at tabs."""
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


def usable(q: str, a: str) -> str | None:
    """Why a normalized pair cannot be kept, or None."""
    from core_model.acknowledgements import is_distress

    if not q or not a:
        return "malformed line"
    if len(q) > MAX_MESSAGE or len(a) > MAX_REPLY:
        return "too long"
    if LINK.search(q + a) or not mostly_korean(q) or not mostly_korean(a):
        return "link, mention or not mostly Korean"
    if is_distress(q) or "109" in a:
        return "a wish to die"
    return None


def curate(answer_dirs: list[Path], new_files: list[Path], labels: list[str], corpus: Path,
           everyday: Path) -> tuple[list, Counter]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from core_model.data import Pair, dev_split, read_pairs, split, text_key
    from core_model.text import normalize

    train, held = split(read_pairs(corpus))
    fit, dev = dev_split(train)
    label_of = {p.q: p.label for p in fit}
    measured = [p.q for p in held + dev] + [normalize(line) for line in everyday.read_text(encoding="utf-8")
                                            .splitlines() if line.strip()]
    measured_keys = {text_key(q) for q in measured}
    dropped: Counter = Counter()
    kept: list[Pair] = []
    for folder in answer_dirs:
        questions = {row[0]: normalize(row[1]) for row in read_tsv(folder / "questions.tsv") if len(row) == 2}
        for row in read_tsv(folder / "answers.tsv"):
            q = questions.get(row[0], "") if len(row) == 2 else ""
            a = normalize(row[1]) if len(row) == 2 else ""
            why = usable(q, a) or (None if q in label_of else "not a training-side question")
            if why:
                dropped[why] += 1
            else:
                kept.append(Pair(q, a, label_of[q]))
    seen: set[str] = set()
    new: list[Pair] = []
    for path, label in zip(new_files, labels):
        for row in read_tsv(path):
            q, a = (normalize(row[0]), normalize(row[1])) if len(row) == 2 else ("", "")
            why = usable(q, a) or ("the same as a measured message" if text_key(q) in measured_keys else None) \
                or ("repeated message" if text_key(q) in seen else None)
            if why:
                dropped[why] += 1
            else:
                seen.add(text_key(q))
                new.append(Pair(q, a, label))
    if new:
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True).fit(measured)
        sims = (vectorizer.transform([p.q for p in new]) @ vectorizer.transform(measured).T).max(axis=1).toarray()
        for pair, sim in zip(new, sims[:, 0]):
            if sim >= NEAR:
                dropped["nearly the same as a measured message"] += 1
            else:
                kept.append(pair)
    return kept, dropped


def main(argv: list[str] | None = None) -> int:
    from bot.paths import BASE_CORPUS, REPO_ROOT

    parser = argparse.ArgumentParser(prog="python -m scripts.curate_written", description=__doc__.splitlines()[0])
    parser.add_argument("--answers", nargs="*", default=[], type=Path, metavar="DIR",
                        help="folders with questions.tsv and answers.tsv: second answers to corpus questions")
    parser.add_argument("--new", nargs="*", default=[], type=Path, metavar="TSV",
                        help="Q<TAB>A files of new messages, one per topic area")
    parser.add_argument("--labels", nargs="*", default=[], help="ChatbotData label per --new file (0, 1 or 2)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if len(args.labels) != len(args.new) or not set(args.labels) <= {"0", "1", "2"}:
        parser.error("--labels needs one label (0, 1 or 2) per --new file")
    from core_model.data import write_pairs

    kept, dropped = curate(args.answers, args.new, args.labels, BASE_CORPUS, REPO_ROOT / "data" / "everyday.txt")
    write_pairs(args.out, kept)
    print(json.dumps({"kept": len(kept), "dropped": dict(dropped)}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
