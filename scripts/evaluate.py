"""`chatbot eval`: response selection, BLEU, chrF and fluency on the held-out split; blind rating sheets.

Every system answers the same held-out questions of ChatbotData (the split no shipped model
trained on or chose anything by): the shipped model as the daemon runs it (the best-fitting bank
answer, an acknowledgement or its own words, `core_model.responder`), the same model generating alone,
the seed's exact configuration (its recipe, decoded by plain argmax as the notebook did: `<unk>`
allowed, repeats not blocked), the same seed weights decoded by our greedy decoder (`<unk>` never
emitted, no repeats: our decoding fixes credited to the seed), and a TF-IDF retrieval baseline. Writes
reports/eval.md, reports/scores.png and reports/curves.png; `--json` prints one JSON object.
Response selection (Recall@1 of 10, MRR) ranks each held-out answer among 9 others by every scorer;
`--sheet` writes a blind rating sheet and `--ratings` unblinds raters' copies (`core_model.evaluation`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def retrieval_replies(train, questions: list[str]) -> list[str]:
    """Nearest training question by TF-IDF over character 1-3-grams -> its answer."""
    from core_model.answer_bank import AnswerBank

    bank = AnswerBank([p.q for p in train], [p.a for p in train])
    nearest, _ = bank.nearest(questions, 1)
    return [bank.answers[i] for i in nearest[:, 0]]


def model_replies(model_dir: str, questions: list[str], beam: str = "1", answer_bank: bool = False
                  ) -> tuple[list[str], list[bool]]:
    """Replies as `Responder` gives them; beam "notebook": the seed notebook's own greedy decoding."""
    from tqdm import tqdm

    from core_model.baselines import NotebookGreedyDecoder
    from core_model.responder import Responder

    responder = Responder(model_dir, beam_width=1 if beam == "notebook" else int(beam), answer_bank=answer_bank)
    if beam == "notebook":
        responder.decoder = NotebookGreedyDecoder(responder.loaded.model)
    out = []
    for i in tqdm(range(0, len(questions), 128), desc=Path(model_dir).name, unit="batch", file=sys.stderr):
        out += responder.replies([responder.prepare(q) for q in questions[i:i + 128]])
    return [r.text for r in out], [r.ended for r in out]


def selection(model_dir: str, held) -> dict[str, list[int]]:
    """Ranks of each held-out answer among its 10 (`core_model.evaluation`), per system that scores answers:
    the daemon's answer scorer, the selector alone, shared words alone (TF-IDF), and the seq2seq
    model's mean log-probability, plain and with an anti-language-model term (minus 0.7 x log p(answer | nothing))."""
    from core_model import artifacts
    from core_model.evaluation import selection_ranks
    from core_model.ranking import AnswerRanker
    from core_model.scoring import SequenceScorer
    from core_model.tokenizer import Tokenizer

    loaded = artifacts.load(model_dir)
    pairs = [(p.q, p.a) for p in held]
    out: dict[str, list[int]] = {}
    if loaded.bank is not None and loaded.selector is not None:
        ranker = AnswerRanker(loaded.bank, loaded.selector)
        out["shipped"] = selection_ranks(ranker.score, pairs)
        out["selector"] = selection_ranks(loaded.selector.score, pairs)
        bank = loaded.bank
        out["overlap"] = selection_ranks(lambda qs, cands: [
            (bank.vectorize(c) @ bank.vectorize([q]).T).toarray()[:, 0] for q, c in zip(qs, cands)], pairs)
    tokenizer, scorer, cfg = Tokenizer(), SequenceScorer(loaded.model), loaded.model.config

    def encode(text: str, cap: int) -> list[int]:
        return loaded.vocab.encode(tokenizer.tokenize(text), cap)

    def generator(anti_lm: float):
        def score(qs: list[str], cands: list[list[str]]):
            replies = [[encode(c, cfg.max_reply_len - 1) for c in options] for options in cands]
            given = scorer([encode(q, cfg.max_input_len) for q in qs], replies)
            alone = scorer([[] for _ in qs], replies) if anti_lm else [0.0] * len(qs)
            return [g - anti_lm * a for g, a in zip(given, alone)]
        return score

    out["generator"] = selection_ranks(generator(0.0), pairs)
    out["generator_anti_lm"] = selection_ranks(generator(0.7), pairs)
    return out


def write_report(out_dir: Path, result: dict, examples: dict, curves: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    systems = [s for s in result["systems"] if "chrf" in result["systems"][s]]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, metric in zip(axes, ("bleu", "chrf", "fluency")):
        ax.bar(systems, [result["systems"][s][metric] for s in systems],
               color=[plt.get_cmap("tab10")(i) for i in range(len(systems))])
        ax.set_title(metric)
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(out_dir / "scores.png", dpi=100)
    plt.close(fig)
    fig, (ax, ax_chrf) = plt.subplots(1, 2, figsize=(11, 3.5))
    for name, hist in curves.items():
        for key, style, what in (("loss", "-", "training"), ("val_loss", "--", hist["val_is"])):
            if key in hist:
                ax.plot(range(1, len(hist[key]) + 1), hist[key], style, label=f"{name} {what} loss")
        if "val_chrf" in hist:
            ax_chrf.plot(range(1, len(hist["val_chrf"]) + 1), hist["val_chrf"], label=f"{name} dev chrF (greedy)")
    ax.set(xlabel="epoch", ylabel="masked cross-entropy")
    ax_chrf.set(xlabel="epoch", ylabel="chrF")
    for a in (ax, ax_chrf):
        if a.lines:
            a.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=100)
    plt.close(fig)
    lines = ["# Evaluation on the held-out split", "",
             f"Held-out pairs: {result['split']['heldout']} (training pairs: {result['split']['train']}).", "",
             "| system | Recall@1 of 10 | MRR | BLEU | chrF | fluency | distinct replies |",
             "|---|---|---|---|---|---|---|"]
    for s, r in result["systems"].items():
        cells = [r.get("recall_at_1_of_10", "-"), r.get("mrr", "-"), r.get("bleu", "-"), r.get("chrf", "-"),
                 f"{r['fluency']:.1%}" if "fluency" in r else "-", r.get("distinct_replies", "-")]
        lines.append(f"| {s} | " + " | ".join(map(str, cells)) + " |")
    t = result.get("targets", {})
    if t:
        lines += ["", "Targets: the shipped answer scorer's Recall@1 of 10 >= 0.40, fluency >= 95% (judged fitting "
                      "and unfit: `chatbot eval --ratings`, reports/judged.md). Met: "
                      f"{'yes' if t['met'] else 'no'}. chrF ratios, reported, not targeted: shipped / retrieval "
                      f"{t.get('chrf_vs_retrieval')}, / seed {t.get('chrf_vs_seed')}."]
        if "chrf_gain_vs_retrieval_ci95" in t:
            low, high = t["chrf_gain_vs_retrieval_ci95"]
            lines += ["", f"Shipped chrF minus retrieval chrF, 95% paired-bootstrap interval (200 resamples of the "
                          f"held-out pairs): [{low}, {high}]."]
    lines += ["", "![scores](scores.png)", "", "![training curves](curves.png)", "", "## 20 examples", "",
              "| question | reference | " + " | ".join(examples["systems"]) + " |",
              "|" + "---|" * (len(examples["systems"]) + 2)]
    for row in examples["rows"]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    (out_dir / "eval.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def targets(systems: dict) -> dict:
    """The bar of the reply-quality issue, on what can be measured without raters: the daemon's answer
    scorer ranks the right held-out answer first among 10 at least 40% of the time, and fluency stays
    >= 95%. (Judged fitting/unfit come from `--ratings`.) chrF ratios stay in the report, chosen by nothing.
    """
    shipped, out = systems.get("shipped"), {}
    if shipped:
        for other in ("retrieval", "seed", "seed_our_decoder"):
            if systems.get(other, {}).get("chrf"):
                out[f"chrf_vs_{other}"] = round(shipped["chrf"] / systems[other]["chrf"], 3)
        out["met"] = shipped.get("recall_at_1_of_10", 0) >= 0.40 and shipped["fluency"] >= 0.95
    return out


def main(argv: list[str] | None = None) -> int:
    from bot.paths import BASE_CORPUS, MODELS_DIR, REPO_ROOT
    from bot.settings import Settings

    shipped = MODELS_DIR / "default"
    defaults = [f"shipped={shipped}@{Settings.beam_width}:1",
                f"shipped_generation={shipped}@{Settings.beam_width}:0", f"seed={MODELS_DIR / 'seed'}@notebook:0",
                f"seed_our_decoder={MODELS_DIR / 'seed'}@1:0"]
    parser = argparse.ArgumentParser(prog="chatbot eval", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(BASE_CORPUS))
    parser.add_argument("--model", action="append", metavar="NAME=DIR[@BEAM[:K]]",
                        help="a model to score, decoded with beam width BEAM (1: greedy; notebook: the seed "
                             "notebook's greedy, <unk> allowed and repeats not blocked), answering from its bank "
                             "when it has one and K > 0 (0: generation only); repeatable. "
                             "Default: " + " ".join(d.replace(str(REPO_ROOT) + "/", "") for d in defaults))
    parser.add_argument("--limit", type=int, default=0, help="score only the first N held-out pairs")
    parser.add_argument("--reports", default=str(REPO_ROOT / "reports"))
    parser.add_argument("--json", action="store_true", help="print one JSON object on standard output")
    parser.add_argument("--sheet", metavar="OUT.tsv",
                        help="also write a blind rating sheet of a seeded sample of held-out questions (every "
                             "system's reply and the reference answer, shuffled, ids only); its key goes to "
                             "OUT.tsv.key.json: keep it from the raters")
    parser.add_argument("--sample", type=int, default=120, help="questions on the rating sheet (default 120)")
    parser.add_argument("--messages", metavar="TXT",
                        help="with --sheet: rate replies to these messages instead (one per line; e.g. "
                             "data/everyday.txt, messages not in the corpus): every --model's reply, no reference, "
                             "no scores")
    parser.add_argument("--ratings", nargs="+", metavar="RATED.tsv",
                        help="unblind rated sheets (one per rater, with --key) into reports/judged.json and "
                             "judged.md, then stop")
    parser.add_argument("--key", help="the key written beside the sheet (OUT.tsv.key.json)")
    args = parser.parse_args(argv)
    if args.ratings:
        return report_ratings(args, parser)
    if args.messages:
        return messages_sheet(args, parser)

    from core_model.data import read_pairs, split
    from core_model.evaluation import chrf_gain_interval, scores, selection_measures, write_sheet

    train, held = split(read_pairs(args.data))
    held = held[: args.limit] if args.limit else held
    questions, refs = [p.q for p in held], [p.a for p in held]
    specs = args.model or defaults
    result: dict = {"split": {"train": len(train), "heldout": len(held)}, "systems": {}}
    replies: dict[str, list[str]] = {}
    curves: dict[str, dict] = {}
    for spec in specs:
        name, path, beam, bank = model_spec(spec, parser)
        if not (Path(path) / "manifest.json").exists():
            print(f"chatbot eval: skipping {name}: no model at {path}", file=sys.stderr)
            continue
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
        if all(c.get("path") != path for c in curves.values()):  # one curve per model directory
            curves[name] = {**manifest.get("history", {}), "path": path,
                            "val_is": "dev" if manifest.get("split", {}).get("dev") else "held-out"}
        print(f"scoring {name} ({path}, beam {beam}, {'bank' if bank else 'no bank'}) "
              f"on {len(held)} held-out questions", file=sys.stderr)
        replies[name], eos = model_replies(path, questions, beam, bank)
        result["systems"][name] = scores(replies[name], refs, eos)
        if name == "shipped":
            print("response selection: each held-out answer among 10", file=sys.stderr)
            for system, ranks in selection(path, held).items():
                result["systems"].setdefault(system, {}).update(selection_measures(ranks))
    replies["retrieval"] = retrieval_replies(train, questions)
    result["systems"]["retrieval"] = scores(replies["retrieval"], refs, [True] * len(refs))
    result["targets"] = targets(result["systems"])
    if "shipped" in replies:
        result["targets"]["chrf_gain_vs_retrieval_ci95"] = chrf_gain_interval(replies["shipped"], replies["retrieval"],
                                                                              refs)
    if args.sheet:
        import random

        sample = sorted(random.Random(0).sample(range(len(held)), min(args.sample, len(held))))
        key = write_sheet(args.sheet, [questions[i] for i in sample],
                          {"reference": [refs[i] for i in sample],
                           **{name: [texts[i] for i in sample] for name, texts in replies.items()}})
        print(f"rating sheet: {args.sheet} ({len(sample)} questions); key: {key} (keep it from the raters)",
              file=sys.stderr)
    rows = [[questions[i], refs[i]] + [replies[s][i] for s in replies] for i in range(min(20, len(held)))]
    write_report(Path(args.reports), result, {"rows": rows, "systems": list(replies)}, curves)
    print(json.dumps(result, ensure_ascii=False) if args.json else json.dumps(result, ensure_ascii=False, indent=2))
    return 0


def model_spec(spec: str, parser: argparse.ArgumentParser) -> tuple[str, str, str, bool]:
    """NAME=DIR[@BEAM[:K]] -> (name, dir, beam width or "notebook" (default "1"), whether to answer from the bank)."""
    name, _, path = spec.partition("=")
    path, _, decoding = path.partition("@")
    width, _, candidates = decoding.partition(":")
    if not (width in ("", "notebook") or width.isdigit()) or not (candidates == "" or candidates.isdigit()):
        parser.error(f"--model {spec}: expected NAME=DIR[@BEAM[:K]], BEAM a number or 'notebook', K a number")
    return name, path, width or "1", bool(int(candidates or 0))


def messages_sheet(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`--messages TXT --sheet OUT.tsv`: a blind sheet of every --model's reply to each message of TXT."""
    from core_model.evaluation import write_sheet

    if not args.sheet or not args.model:
        parser.error("--messages needs --sheet OUT.tsv and at least one --model NAME=DIR[@BEAM[:K]]")
    try:
        messages = [line.strip() for line in Path(args.messages).read_text(encoding="utf-8").splitlines()
                    if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        print(f"chatbot eval: {args.messages}: {exc}", file=sys.stderr)
        return 2
    specs = [model_spec(spec, parser) for spec in args.model]
    missing = [f"{name} ({path})" for name, path, _, _ in specs if not (Path(path) / "manifest.json").exists()]
    if missing:  # a sheet without one of the systems asked for would compare less than it seems to
        print(f"chatbot eval: no model at {', '.join(missing)}", file=sys.stderr)
        return 2
    replies = {name: model_replies(path, messages, beam, bank)[0] for name, path, beam, bank in specs}
    key = write_sheet(args.sheet, messages, replies)
    print(f"rating sheet: {args.sheet} ({len(messages)} messages); key: {key} (keep it from the raters)",
          file=sys.stderr)
    return 0


def report_ratings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """`--ratings`: unblind the raters' sheets with the key, write reports/judged.{json,md}."""
    from core_model.evaluation import unblind

    if not args.key:
        parser.error("--ratings needs --key (the OUT.tsv.key.json written beside the sheet)")
    try:
        judged = unblind(args.key, args.ratings)
    except (OSError, ValueError, KeyError) as exc:
        print(f"chatbot eval: {exc}", file=sys.stderr)
        return 2
    out = Path(args.reports)
    out.mkdir(parents=True, exist_ok=True)
    (out / "judged.json").write_text(json.dumps(judged, ensure_ascii=False, indent=2), encoding="utf-8")
    lines = ["# Judged appropriateness (blind raters)", "",
             f"{judged['raters']} raters, {judged['rows_rated']} rows; exact agreement "
             f"{judged['exact_agreement']}. Fitting: mean rating >= 1.5; unfit: <= 0.5.", "",
             "| system | replies | fitting | unfit | mean |", "|---|---|---|---|---|"]
    for name, r in judged["systems"].items():
        if r["n"]:
            lines.append(f"| {name} | {r['n']} | {r['fitting']:.0%} | {r['unfit']:.0%} | {r['mean']} |")
    (out / "judged.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(json.dumps(judged, ensure_ascii=False) if args.json else "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
