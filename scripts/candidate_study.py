"""How much better could choosing among bank answers get? Rated candidate pools answer it.

`python -m scripts.candidate_study sheets DIR` writes two blind sheets of candidate answers (the
answer of the nearest bank question, then the shipped ranking's next picks: 5 distinct answers per
message):
- `dev`: 200 dev questions, bank = the fit pairs, the shipped selector (trained on the fit pairs, so
  it never saw these questions): the evaluation pool, two raters per sheet.
- `train`: 1,000 questions of a 10% slice of the fit pairs, bank = the other 90%, a selector trained
  on those 90% only (the same recipe): labels a learned reranker could train on, one rater per sheet.
- `train2` (`--pools train2`), `train3`: the same from a second and a third slice, none of the others' pairs.

`python -m scripts.candidate_study export DIR` writes the training pools' ratings to
data/judged_answers.tsv, which the response selector learns from (`core_model.judgements`).

`python -m scripts.candidate_study report DIR` reads the raters' copies (`<pool>-<n>.tsv` sheets with
their `.key.json`, ratings in `<pool>-<n>.rater<k>.tsv`) and prints JSON: the share of messages with at
least one fitting candidate (the ceiling of any reranker over this pool), what the shipped score, the
nearest question's answer and rerankers trained on the `train` labels (ridge, logistic, gradient-
boosted trees over the ranking's features) pick on `dev`, and the acknowledgement gate's trade-off.
The ratings behind the README's figures are in reports/ratings/pool-*/.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

CANDIDATES = 5
FEATURES = ("sim", "rank", "votes", "fit", "overlap", "mq_sel", "qfit", "logfreq", "alen", "mlen", "top", "gap")
FITTING, UNFIT = 1.5, 0.5
TRAINING_POOLS = ("train", "train2", "train3")
EXPORTED_POOLS = ("train", "train2")
"""What data/judged_answers.tsv holds. train3's 1,417 more preferences (4,271 in all) gave a selector no
better on the dev pool (42% fitting / 29% unfit with no acknowledgement vs 43% / 29%; dev Recall@1 of 10
0.354-0.359 per member vs 0.365-0.372), so the shipped selector keeps the first two pools'."""


def pools(names: Sequence[str] = ("dev", "train")) -> dict:
    """-> {pool name: (bank, selector, messages, candidate lists)}; trains the training pools' selectors."""
    from bot.paths import BASE_CORPUS, default_model_dir
    from core_model.answer_bank import AnswerBank
    from core_model.artifacts import load
    from core_model.data import dev_split, read_pairs, split
    from core_model.ranking import AnswerRanker
    from core_model.selector import SelectorConfig, train_selector
    from core_model.text import normalize

    fit, dev = dev_split(split(read_pairs(BASE_CORPUS))[0])
    fit_rest, labelled = split(fit, 0.1, "rerank-labels")
    rest2, labelled2 = split(fit_rest, 0.11, "rerank-labels-2")  # a second slice, none of the first's pairs
    rest3, labelled3 = split(rest2, 0.125, "rerank-labels-3")  # a third, none of the first two's
    recipes = {"dev": (fit, dev, 15, 200), "train": (fit_rest, labelled, 16, 1000),
               "train2": (rest2 + labelled, labelled2, 17, 1000),
               "train3": (rest3 + labelled + labelled2, labelled3, 18, 1000)}
    out = {}
    for name in names:
        bank_pairs, questions, seed, count = recipes[name]
        if name == "dev":
            selector = load(default_model_dir()).selector
        else:
            # one member, as when the rated sheets were drawn, so they can be drawn again
            selector, _ = train_selector([(p.q, p.a) for p in bank_pairs], [(p.q, p.a) for p in dev],
                                         SelectorConfig(members=1), verbose=False)
        bank = AnswerBank.from_pairs([(p.q, p.a, None) for p in bank_pairs])
        ranker = AnswerRanker(bank, selector)
        distinct = sorted({normalize(p.q): p for p in questions}.values(), key=lambda p: p.q)
        messages = [normalize(p.q) for p in random.Random(seed).sample(distinct, min(count, len(distinct)))]
        nearest, _ = bank.nearest(messages, 1)
        best = ranker.ranked(messages)
        cands = []
        for i, order in enumerate(best):
            seen: list[str] = []
            for j in [int(nearest[i, 0]), *order]:
                if bank.answers[j] not in seen:
                    seen.append(bank.answers[j])
            cands.append(seen[:CANDIDATES])
        out[name] = (bank, selector, messages, cands)
    return out


def features(bank, selector, messages: list[str], cands: list[list[str]]):
    """The ranking's view of each (message, candidate): similarity of the candidate's question, its
    place in the shortlist, how many shortlisted questions share it, fit, shared words, ..."""
    import numpy as np

    from core_model.ranking import SHORTLIST

    freq = Counter(bank.answers)
    nearest, sims = bank.nearest(messages, SHORTLIST)
    message_vectors = selector.embed_messages(messages)
    words = bank.vectorize(messages)
    rows, owner, questions, flat = [], [], [], []
    for i, options in enumerate(cands):
        for answer in options:
            places = [t for t in range(SHORTLIST) if bank.answers[nearest[i, t]] == answer]
            t = min(places) if places else SHORTLIST - 1
            rows.append({"sim": float(sims[i, t]) if places else 0.0, "rank": t, "votes": len(places),
                         "top": float(sims[i, 0]), "gap": float(sims[i, 0] - (sims[i, t] if places else 0.0)),
                         "logfreq": math.log(freq[answer] or 1), "alen": len(answer) / 20,
                         "mlen": len(messages[i]) / 20})
            owner.append(i)
            questions.append(bank.questions[nearest[i, t]])
            flat.append(answer)
    owner_arr = np.array(owner)
    m = message_vectors[owner_arr]
    a, q = selector.embed_answers(flat), selector.embed_messages(questions)
    shared = np.asarray(bank.vectorize(flat).multiply(words[owner_arr]).sum(1))[:, 0]
    for k, row in enumerate(rows):
        row.update(fit=float(m[k] @ a[k]), overlap=float(shared[k]), mq_sel=float(m[k] @ q[k]), qfit=float(q[k] @ a[k]))
    return np.array([[row[f] for f in FEATURES] for row in rows]), owner_arr


def write_sheets(out_dir: Path, names: Sequence[str], per_sheet: int = 100) -> None:
    from core_model.evaluation import write_sheet

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, (_, _, messages, cands) in pools(names).items():
        for n in range(0, len(messages), per_sheet):
            part = range(n, min(n + per_sheet, len(messages)))
            if (out_dir / f"{name}-{n // per_sheet}.tsv").exists():
                raise SystemExit(f"{out_dir / f'{name}-{n // per_sheet}.tsv'} exists: its key and ratings would no "
                                 "longer match")
            write_sheet(out_dir / f"{name}-{n // per_sheet}.tsv", [messages[i] for i in part],
                        {f"c{k}": [cands[i][k] if k < len(cands[i]) else cands[i][0] for i in part]
                         for k in range(CANDIDATES)})
            print(f"{out_dir / f'{name}-{n // per_sheet}.tsv'}", file=sys.stderr)


def rated(out_dir: Path, name: str) -> dict[tuple[str, str], float]:
    """(message, answer) -> mean rating over every rater of every sheet of the pool."""
    import numpy as np

    from core_model.evaluation import read_ratings

    out = {}
    for sheet in sorted(out_dir.glob(f"{name}-*.tsv")):
        if ".rater" in sheet.name:
            continue
        raters = [read_ratings(p) for p in sorted(out_dir.glob(sheet.stem + ".rater*.tsv"))]
        if not raters:
            continue
        lines = sheet.read_text(encoding="utf-8").splitlines()[1:]
        cells = {line.split("\t")[0]: line.split("\t") for line in lines}
        for rid, (_, message, reply, *_) in cells.items():
            if all(rid in r for r in raters):
                out[(message, reply)] = float(np.mean([r[rid] for r in raters]))
    return out


def report(out_dir: Path) -> dict:
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    data = {}
    for name, (bank, selector, _, _) in pools().items():
        labels = rated(out_dir, name)  # the rated candidates, whatever the selector would shortlist today
        by_message: dict[str, list[str]] = {}
        for message, answer in labels:
            by_message.setdefault(message, []).append(answer)
        msgs = sorted(by_message)
        x, owner = features(bank, selector, msgs, [by_message[m] for m in msgs])
        y = np.array([labels[(m, a)] for m in msgs for a in by_message[m]])
        data[name] = (x, owner, y)
    x_train, _, y_train = data["train"]
    x_dev, owner, y_dev = data["dev"]
    col = {f: i for i, f in enumerate(FEATURES)}
    shipped = x_dev[:, col["sim"]] + x_dev[:, col["fit"]] + 0.5 * x_dev[:, col["overlap"]]
    groups = [np.where(owner == o)[0] for o in np.unique(owner)]

    def pick(score) -> dict:
        chosen = np.array([g[np.argmax(score[g])] for g in groups])
        return {"fitting": round(float(np.mean(y_dev[chosen] >= FITTING)), 3),
                "unfit": round(float(np.mean(y_dev[chosen] <= UNFIT)), 3),
                "mean": round(float(np.mean(y_dev[chosen])), 3)}

    scaler = StandardScaler().fit(x_train)
    xs_train, xs_dev = scaler.transform(x_train), scaler.transform(x_dev)
    systems = {"shipped score": pick(shipped),
               "nearest question's answer": pick(-x_dev[:, col["rank"]] + x_dev[:, col["sim"]] * 1e-3),
               "ridge on ratings": pick(Ridge(alpha=10).fit(xs_train, y_train).predict(xs_dev)),
               "logistic on fitting": pick(LogisticRegression(C=0.1, max_iter=2000)
                                           .fit(xs_train, y_train >= FITTING).decision_function(xs_dev)),
               "gradient-boosted trees": pick(HistGradientBoostingRegressor(max_depth=3, max_iter=200,
                                                                            learning_rate=0.05, random_state=0)
                                              .fit(x_train, y_train).predict(x_dev))}
    chosen = np.array([g[np.argmax(shipped[g])] for g in groups])
    gate = {}
    for threshold in (0.8, 0.85, 0.9, 0.95, 1.0):
        sent = shipped[chosen] >= threshold
        gate[str(threshold)] = {"acknowledged": round(float(np.mean(~sent)), 3),
                                "fitting": round(float(np.mean(sent & (y_dev[chosen] >= FITTING))), 3),
                                "unfit": round(float(np.mean(sent & (y_dev[chosen] <= UNFIT))), 3)}
    return {"messages": {"dev": len(groups), "train": len(np.unique(data["train"][1]))},
            "rated_rows": {"dev": len(y_dev), "train": len(y_train)},
            "any_fitting_candidate": round(float(np.mean([y_dev[g].max() >= FITTING for g in groups])), 3),
            "picks_on_dev": systems, "shipped_with_acknowledgement_below": gate}


def acknowledgement_sheet(out_dir: Path, band: tuple[float, float] | None = None) -> Path:
    """A blind sheet of what the dev split's acknowledged messages could get: the generic acknowledgement
    (a question's or a statement's), the situation's (`core_model.acknowledgements`) and the best bank
    answer; and for messages in a situation scoring from the threshold up to 1.05, the situation's
    acknowledgement beside the bank answer (would a higher threshold for them pay?). With `band`, only
    the messages in a situation scoring within it. The key's `groups` says which message is in which group."""
    from bot.paths import BASE_CORPUS, default_model_dir
    from core_model.acknowledgements import acknowledgements, generic_acknowledgements, situation
    from core_model.answer_bank import AnswerBank
    from core_model.artifacts import load
    from core_model.data import dev_split, read_pairs, split
    from core_model.evaluation import write_sheet
    from core_model.ranking import AnswerRanker
    from core_model.responder import ACKNOWLEDGE_BELOW, GENERATE_BELOW
    from core_model.text import normalize

    fit, dev = dev_split(split(read_pairs(BASE_CORPUS))[0])
    ranker = AnswerRanker(AnswerBank.from_pairs([(p.q, p.a, None) for p in fit]), load(default_model_dir()).selector)
    messages = sorted({normalize(p.q) for p in dev})
    best, scores = ranker.best(messages)
    low, high = band or (ACKNOWLEDGE_BELOW, 1.05)
    groups = {"acknowledged": [] if band else [i for i, s in enumerate(scores) if GENERATE_BELOW <= s < low],
              "above": [i for i, s in enumerate(scores) if low <= s < high and situation(messages[i])]}
    chosen = [i for group in groups.values() for i in group]
    texts = [messages[i] for i in chosen]

    def pick(options: list[tuple[str, ...]]) -> list[str]:
        return [o[int(max(range(len(o)), key=lambda k: f[k]))] for o, f in zip(options, ranker.score(texts, options))]

    found = [situation(t) for t in texts]
    generic = [generic_acknowledgements(t) for t in texts]
    own = [acknowledgements(t) for t in texts]
    replies = {"generic": pick(generic), "situational": pick(own),
               "bank": [ranker.bank.answers[best[i]] for i in chosen]}
    above = set(groups["above"])
    replies["generic"] = [s if i in above else g for i, g, s in zip(chosen, replies["generic"], replies["situational"])]
    sheet = out_dir / ("acks.tsv" if band is None else f"acks-{low}-{high}.tsv")
    if sheet.exists():
        raise SystemExit(f"{sheet} exists: its key and ratings would no longer match")
    key = write_sheet(sheet, texts, replies)
    data = json.loads(key.read_text(encoding="utf-8"))
    data["groups"] = {name: [chosen.index(i) for i in group] for name, group in groups.items()}
    data["situations"] = [there.name if there else None for there in found]
    data["scores"] = [round(float(scores[i]), 3) for i in chosen]
    key.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return sheet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.candidate_study", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("sheets", "report", "export", "acks"))
    parser.add_argument("dir", type=Path, help="where the sheets, keys and rated copies are")
    parser.add_argument("--pools", nargs="+", choices=("dev", *TRAINING_POOLS),
                        help="sheets: which pools to write (default: dev train); export: which training pools' "
                             f"ratings (default: {' '.join(EXPORTED_POOLS)})")
    parser.add_argument("--band", nargs=2, type=float, metavar=("LOW", "HIGH"),
                        help="acks: only messages in a situation scoring from LOW to HIGH (situational vs bank)")
    parser.add_argument("out", nargs="?", type=Path, default=Path("data/judged_answers.tsv"),
                        help="export: the training pool's ratings as message, answer, rating (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.action == "sheets":
        write_sheets(args.dir, args.pools or ["dev", "train"])
    elif args.action == "acks":
        print(acknowledgement_sheet(args.dir, tuple(args.band) if args.band else None), file=sys.stderr)
    elif args.action == "export":
        from core_model.judgements import write_judged

        pools_ = [p for p in args.pools or EXPORTED_POOLS if p != "dev"]
        rows = sorted((m, a, r) for pool in pools_ for (m, a), r in rated(args.dir, pool).items())
        write_judged(args.out, rows)
        print(f"{args.out}: {len(rows)} rated (message, answer) rows", file=sys.stderr)
    else:
        print(json.dumps(report(args.dir), ensure_ascii=False, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
