"""`chatbot retrain`: base corpus + logged pairs -> a new model version, promoted only if not worse.

The held-out split is computed on the base corpus exactly as for the shipped model, so held-out
figures are comparable; logged pairs only ever go to training (repeated `--pair-weight` times).
Not worse means all of: the generator's held-out loss is not higher; the answer scorer (selector +
shared words) does not rank held-out answers worse (Recall@1 of 10); and the replies as the daemon
gives them are not worse in held-out chrF - each "worse" only beyond noise (the 95% paired-bootstrap
interval of the gain lies below zero). The loss alone misses what users see: most replies come from
the answer bank, which the selector chooses from.
Promotion swaps the `current` symlink atomically; a running daemon follows it (SIGHUP, the
admin command, or its file watch).
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path

from scripts.train import add_train_options, train_config, written_pairs


def promote(models_dir: Path, version_dir: Path) -> None:
    """Point `models_dir/current` at `version_dir`, atomically (rename over the old link)."""
    tmp = models_dir / f".current.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(version_dir.resolve(), models_dir.resolve()))
    os.replace(tmp, models_dir / "current")


def heldout_loss_of(model_dir: Path, held, tokenizer) -> float:
    """Masked per-token loss of a saved model directory on held-out pairs."""
    from core_model import artifacts
    from core_model.train import token_loss

    loaded = artifacts.load(model_dir)
    cfg = loaded.model.config
    return token_loss(loaded.model, [(loaded.vocab.encode(tokenizer.tokenize(p.q), cfg.max_input_len),
                                      loaded.vocab.encode(tokenizer.tokenize(p.a), cfg.max_reply_len - 1))
                                     for p in held])


def daemon_replies(model_dir: Path, questions: list[str]) -> list[str]:
    """Replies to `questions` as the daemon would give them with this model directory (defaults)."""
    from bot.settings import Settings
    from scripts.evaluate import model_replies

    return model_replies(str(model_dir), questions, str(Settings.beam_width), Settings.answer_bank)[0]


def selection_ranks_of(model_dir: Path, held) -> list[int] | None:
    """Ranks of the held-out answers among 10 by this directory's answer scorer (None: it has none)."""
    from core_model import artifacts
    from core_model.evaluation import selection_ranks
    from core_model.ranking import AnswerRanker

    loaded = artifacts.load(model_dir)
    if loaded.bank is None or loaded.selector is None:
        return None
    return selection_ranks(AnswerRanker(loaded.bank, loaded.selector).score, [(p.q, p.a) for p in held])


def judge(new_dir: Path, baseline_dir: Path, held, tokenizer, manifest: dict) -> list[str]:
    """Add held-out figures of the new model (and of the one it would replace) to `manifest`;
    -> the reasons not to promote it (none: promote)."""
    import sacrebleu

    from core_model.evaluation import chrf_gain_interval, recall_gain_interval, selection_measures

    questions, refs = [p.q for p in held], [p.a for p in held]

    def chrf(replies: list[str]) -> float:
        return round(sacrebleu.corpus_chrf(replies, [refs]).score, 2)

    new_replies = daemon_replies(new_dir, questions)
    manifest["heldout_chrf"] = chrf(new_replies)
    new_ranks = selection_ranks_of(new_dir, held)
    if new_ranks is not None:
        manifest["heldout_selection"] = selection_measures(new_ranks)
    if not (baseline_dir / "manifest.json").exists():
        return []
    old_ranks = selection_ranks_of(baseline_dir, held)
    recall_gain = recall_gain_interval(new_ranks, old_ranks) if new_ranks and old_ranks else None
    new_loss = manifest["heldout_loss"]  # measured by train() the same way, on the same pairs
    old_loss = heldout_loss_of(baseline_dir, held, tokenizer)
    old_replies = daemon_replies(baseline_dir, questions)
    gain = chrf_gain_interval(new_replies, old_replies, refs)
    manifest["compared_to"] = {"path": str(baseline_dir), "heldout_loss": old_loss, "chrf_gain_ci95": gain,
                               "heldout_chrf": chrf(old_replies), "recall_at_1_gain_ci95": recall_gain}
    print(f"held-out loss: new {new_loss}, current {old_loss}; chrF of the replies: new {manifest['heldout_chrf']}, "
          f"current {manifest['compared_to']['heldout_chrf']} (95% interval of the gain {gain}; {baseline_dir})",
          file=sys.stderr)
    return (["its held-out loss is higher"] if new_loss > old_loss else []) + \
        (["its replies score lower in held-out chrF, beyond noise"] if gain[1] < 0 else []) + \
        (["its answer scorer ranks held-out answers worse (Recall@1 of 10), beyond noise"]
         if recall_gain and recall_gain[1] < 0 else [])


def main(argv: list[str] | None = None) -> int:
    from bot.paths import BASE_CORPUS, MODELS_DIR, default_model_dir

    parser = argparse.ArgumentParser(prog="chatbot retrain", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", required=True, help="CSV from `chatbot export-pairs`")
    parser.add_argument("--base", default=str(BASE_CORPUS), help="base corpus (default: the ChatbotData copy)")
    parser.add_argument("--out", default=None, help="new version directory (default: models/v<timestamp>)")
    parser.add_argument("--models-dir", default=str(MODELS_DIR), help="where `current` lives")
    parser.add_argument("--compare-to", default=None, help="model to beat (default: models/current or default)")
    parser.add_argument("--pair-weight", type=int, default=3, help="times each logged pair is repeated (default 3)")
    add_train_options(parser)
    args = parser.parse_args(argv)

    from core_model.artifacts import write_manifest
    from core_model.data import DataError, dev_split, read_pairs, split
    from core_model.judgements import load_preferences
    from core_model.tokenizer import Tokenizer
    from core_model.train import train

    try:
        base, logged = read_pairs(args.base), read_pairs(args.pairs)
        judged = load_preferences(args.judged)
        written, written_file = written_pairs(args.written, args.base)
    except (DataError, OSError, ValueError) as exc:
        print(f"chatbot retrain: {exc}", file=sys.stderr)
        return 2
    models_dir = Path(args.models_dir)
    baseline_dir = Path(args.compare_to) if args.compare_to else default_model_dir(models_dir)
    out = Path(args.out or models_dir / ("v" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")))
    tokenizer = Tokenizer()
    base_train, held = split(base)
    if not held:
        print("chatbot retrain: the base corpus is too small: no pair is held out to judge the new model by",
              file=sys.stderr)
        return 2
    base_train, dev = dev_split(base_train)
    cfg = train_config(args)
    print(f"retraining on {len(base_train)} base + {len(logged)} logged pairs (x{args.pair_weight}), "
          f"{len(held)} held out -> {out}", file=sys.stderr)
    manifest = train(base_train + logged * args.pair_weight, out, cfg, dev, held, tokenizer=tokenizer, judged=judged,
                     written=written,
                     extra_info={"command": "chatbot " + shlex.join(["retrain", *(argv or sys.argv[1:])]),
                                 "logged_pairs": len(logged), "pair_weight": args.pair_weight,
                                 **({"written": written_file} if written_file else {})})
    reasons = judge(out, baseline_dir, held, tokenizer, manifest)
    write_manifest(out, manifest)
    if reasons:
        print(f"not promoted: {' and '.join(reasons)}; {baseline_dir} stays current", file=sys.stderr)
        return 3
    promote(models_dir, out)
    print(f"promoted {out} as {models_dir / 'current'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
