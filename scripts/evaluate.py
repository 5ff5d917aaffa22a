"""`chatbot eval`: BLEU, chrF and fluency on the held-out split, models against a retrieval baseline.

Every system answers the same held-out questions of ChatbotData (the split no shipped model
trained on or chose anything by): the shipped model as the daemon runs it (beam search, then the
consensus choice among its reply and 8 retrieved training answers), the same model generating alone,
the seed's exact configuration (its recipe, decoded by plain argmax as the notebook did: `<unk>`
allowed, repeats not blocked), the same seed weights decoded by our greedy decoder (`<unk>` never
emitted, no repeats: our decoding fixes credited to the seed), and a TF-IDF retrieval baseline. Writes
reports/eval.md, reports/scores.png and reports/curves.png; `--json` prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

HANGUL = re.compile(r"[\uac00-\ud7a3\u3131-\u318e]")


def fluent(text: str, ended_by_eos: bool) -> bool:
    """Non-empty, mostly Hangul, no word three times in a row, ended by <eos>."""
    letters = [c for c in text if c.isalpha()]
    words = text.split()
    tripled = any(words[i] == words[i + 1] == words[i + 2] for i in range(len(words) - 2))
    return bool(text) and ended_by_eos and not tripled and \
        sum(bool(HANGUL.match(c)) for c in letters) >= 0.5 * max(1, len(letters))


def scores(hyps: list[str], refs: list[str], eos: list[bool]) -> dict:
    import sacrebleu

    return {"bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
            "chrf": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
            "fluency": round(sum(fluent(h, e) for h, e in zip(hyps, eos)) / max(1, len(hyps)), 4),
            "distinct_replies": len(set(hyps))}


def chrf_gain_interval(hyps: list[str], baseline: list[str], refs: list[str], resamples: int = 200,
                       seed: int = 0) -> list[float]:
    """95% paired-bootstrap interval of chrF(hyps) - chrF(baseline): is a gain more than noise?"""
    import random

    import sacrebleu

    rng, n, gains = random.Random(seed), len(refs), []
    for _ in range(resamples):
        idx = [rng.randrange(n) for _ in range(n)]
        sample_refs = [[refs[i] for i in idx]]
        gains.append(sacrebleu.corpus_chrf([hyps[i] for i in idx], sample_refs).score
                     - sacrebleu.corpus_chrf([baseline[i] for i in idx], sample_refs).score)
    gains.sort()
    return [round(gains[int(0.025 * resamples)], 2), round(gains[int(0.975 * resamples) - 1], 2)]


def retrieval_replies(train, questions: list[str]) -> list[str]:
    """Nearest training question by TF-IDF over character 1-3-grams -> its answer."""
    from core_model.answer_bank import AnswerBank

    bank = AnswerBank([p.q for p in train], [p.a for p in train])
    nearest, _ = bank.nearest(questions, 1)
    return [bank.answers[i] for i in nearest[:, 0]]


def model_replies(model_dir: str, questions: list[str], beam: str = "1", candidates: int = 0
                  ) -> tuple[list[str], list[bool]]:
    """Replies as `Responder` gives them; beam "notebook": the seed notebook's own greedy decoding."""
    from tqdm import tqdm

    from core_model.decode import GreedyDecoder
    from core_model.responder import Responder

    responder = Responder(model_dir, beam_width=1 if beam == "notebook" else int(beam), candidates=candidates)
    if beam == "notebook":
        responder.decoder = GreedyDecoder(responder.loaded.model, notebook=True)
    out: list[tuple[str, bool]] = []
    for i in tqdm(range(0, len(questions), 128), desc=Path(model_dir).name, unit="batch", file=sys.stderr):
        out += responder.reply_batch_detailed(questions[i:i + 128])
    return [t for t, _ in out], [e for _, e in out]


def write_report(out_dir: Path, result: dict, examples: dict, curves: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    systems = list(result["systems"])
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
             "| system | BLEU | chrF | fluency | distinct replies |", "|---|---|---|---|---|"]
    for s in systems:
        r = result["systems"][s]
        lines.append(f"| {s} | {r['bleu']} | {r['chrf']} | {r['fluency']:.1%} | {r['distinct_replies']} |")
    t = result.get("targets", {})
    if t:
        lines += ["", f"Shipped chrF / retrieval chrF: {t.get('chrf_vs_retrieval')} (target >= 1); "
                      f"/ seed chrF: {t.get('chrf_vs_seed')} (target >= 1.5; {t.get('chrf_vs_seed_our_decoder')} "
                      f"against the seed weights decoded by our greedy decoder); fluency target 90%. "
                      f"All targets met: {'yes' if t['met'] else 'no'}."]
        if "chrf_gain_vs_retrieval_ci95" in t:
            low, high = t["chrf_gain_vs_retrieval_ci95"]
            lines += ["", f"Shipped chrF minus retrieval chrF, 95% paired-bootstrap interval (200 resamples of the "
                          f"held-out pairs): [{low}, {high}]."]
    lines += ["", "![scores](scores.png)", "", "![training curves](curves.png)", "", "## 20 examples", "",
              "| question | reference | " + " | ".join(systems) + " |", "|" + "---|" * (len(systems) + 2)]
    for row in examples["rows"]:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    (out_dir / "eval.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def targets(systems: dict) -> dict:
    """The issue's bar: shipped chrF >= retrieval's and >= 1.5x the seed recipe's; fluency >= 90%.

    `seed` is the seed's exact configuration, decoded as its notebook did (plain argmax): the `<unk>`
    mask and repeat blocking of our decoder are part of this project's improvements, so `met` does not
    credit them to the seed. `chrf_vs_seed_our_decoder` is the ratio to the seed weights decoded by
    our greedy decoder, reported beside it.
    """
    shipped, out = systems.get("shipped"), {}
    if shipped:
        for other in ("retrieval", "seed", "seed_our_decoder"):
            if systems.get(other, {}).get("chrf"):
                out[f"chrf_vs_{other}"] = round(shipped["chrf"] / systems[other]["chrf"], 3)
        out["met"] = (out.get("chrf_vs_retrieval", 0) >= 1.0 and out.get("chrf_vs_seed", 0) >= 1.5
                      and shipped["fluency"] >= 0.9)
    return out


def main(argv: list[str] | None = None) -> int:
    from bot.paths import BASE_CORPUS, MODELS_DIR, REPO_ROOT
    from core_model.consensus import DEFAULT_CANDIDATES
    from core_model.decode import DEFAULT_BEAM_WIDTH

    shipped = MODELS_DIR / "default"
    defaults = [f"shipped={shipped}@{DEFAULT_BEAM_WIDTH}:{DEFAULT_CANDIDATES}",
                f"shipped_generation={shipped}@{DEFAULT_BEAM_WIDTH}:0", f"seed={MODELS_DIR / 'seed'}@notebook:0",
                f"seed_our_decoder={MODELS_DIR / 'seed'}@1:0"]
    parser = argparse.ArgumentParser(prog="chatbot eval", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(BASE_CORPUS))
    parser.add_argument("--model", action="append", metavar="NAME=DIR[@BEAM[:K]]",
                        help="a model to score, decoded with beam width BEAM (1: greedy; notebook: the seed "
                             "notebook's greedy, <unk> allowed and repeats not blocked), choosing among its reply "
                             "and K retrieved answers if it has an answer bank (0: generation only); repeatable. "
                             "Default: " + " ".join(d.replace(str(REPO_ROOT) + "/", "") for d in defaults))
    parser.add_argument("--limit", type=int, default=0, help="score only the first N held-out pairs")
    parser.add_argument("--reports", default=str(REPO_ROOT / "reports"))
    parser.add_argument("--json", action="store_true", help="print one JSON object on standard output")
    args = parser.parse_args(argv)

    from core_model.data import read_pairs, split

    train, held = split(read_pairs(args.data))
    held = held[: args.limit] if args.limit else held
    questions, refs = [p.q for p in held], [p.a for p in held]
    specs = args.model or defaults
    result: dict = {"split": {"train": len(train), "heldout": len(held)}, "systems": {}}
    replies: dict[str, list[str]] = {}
    curves: dict[str, dict] = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        path, _, decoding = path.partition("@")
        width, _, candidates = decoding.partition(":")
        if not (width in ("", "notebook") or width.isdigit()) or not (candidates == "" or candidates.isdigit()):
            parser.error(f"--model {spec}: expected NAME=DIR[@BEAM[:K]], BEAM a number or 'notebook', K a number")
        if not (Path(path) / "manifest.json").exists():
            print(f"chatbot eval: skipping {name}: no model at {path}", file=sys.stderr)
            continue
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
        if all(c.get("path") != path for c in curves.values()):  # one curve per model directory
            curves[name] = {**manifest.get("history", {}), "path": path,
                            "val_is": "dev" if manifest.get("split", {}).get("dev") else "held-out"}
        print(f"scoring {name} ({path}, beam {width or 1}, {candidates or 0} retrieved candidates) "
              f"on {len(held)} held-out questions", file=sys.stderr)
        replies[name], eos = model_replies(path, questions, width or "1", int(candidates or 0))
        result["systems"][name] = scores(replies[name], refs, eos)
    replies["retrieval"] = retrieval_replies(train, questions)
    result["systems"]["retrieval"] = scores(replies["retrieval"], refs, [True] * len(refs))
    result["targets"] = targets(result["systems"])
    if "shipped" in replies:
        result["targets"]["chrf_gain_vs_retrieval_ci95"] = chrf_gain_interval(replies["shipped"], replies["retrieval"],
                                                                              refs)
    rows = [[questions[i], refs[i]] + [replies[s][i] for s in result["systems"]] for i in range(min(20, len(held)))]
    write_report(Path(args.reports), result, {"rows": rows}, curves)
    print(json.dumps(result, ensure_ascii=False) if args.json else json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
