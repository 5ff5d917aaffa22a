"""`chatbot train`: train a model directory from a ChatbotData-format CSV."""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import fields
from pathlib import Path

from bot.paths import BASE_CORPUS, BASE_JUDGED, WRITTEN_PAIRS, shown


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Hyper-parameter flags, one per TrainConfig field (shared with `chatbot retrain`)."""
    from core_model.train import TrainConfig

    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default,
                                help=f"(default {f.default})")
        else:
            parser.add_argument(flag, type=type(f.default), default=f.default, choices=f.metadata.get("choices"),
                                help=f"{f.metadata.get('help', '')} (default {f.default})".lstrip())
    parser.add_argument("--judged", default=str(BASE_JUDGED), metavar="TSV",
                        help="raters' judgements of answers the response selector also learns from "
                             "(`core_model.judgements`; '' for none; default: %(default)s)")
    add_written_option(parser)
    parser.add_argument("--seed-config", action="store_true",
                        help="the notebook's recipe: embedding 64, LSTM 512, vocabulary 2000, no attention, "
                             "last epoch kept")


def add_written_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--written", default=None, metavar="CSV",
                        help="pairs written for the answer bank, which holds them beside the corpus's (default: "
                             f"{WRITTEN_PAIRS.relative_to(WRITTEN_PAIRS.parents[1])} with the default corpus, none "
                             "with another; '' for none)")


def written_pairs(path: str | None, corpus: str | Path) -> tuple[list, dict | None]:
    """-> (the written pairs, their file as a manifest records it, or None). By default the shipped ones go
    with the shipped corpus only: they were written beside it, and leave out its held-out questions."""
    from core_model.data import file_sha256, read_pairs

    if path is None:
        shipped = Path(corpus).resolve() == BASE_CORPUS.resolve() and WRITTEN_PAIRS.is_file()
        path = str(WRITTEN_PAIRS) if shipped else ""
    return (read_pairs(path), {"path": shown(path), "sha256": file_sha256(path)}) if path else ([], None)


def train_config(args: argparse.Namespace):
    from core_model.model import SEED_CONFIG
    from core_model.train import TrainConfig

    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    if args.seed_config:
        values.update(SEED_CONFIG, vocab_size=2000, min_count=1, select_by="last", selector_epochs=0)
    try:
        return TrainConfig(**values)
    except ValueError as error:  # a flag out of range: one line, like argparse's own errors
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatbot train", description=__doc__)
    parser.add_argument("--data", default=str(BASE_CORPUS),
                        help="CSV with columns Q,A[,label] (default: the ChatbotData copy in data/)")
    parser.add_argument("--out", required=True, help="model directory to write")
    add_train_options(parser)
    args = parser.parse_args(argv)
    cfg = train_config(args)

    from core_model.data import DataError, dev_split, file_sha256, read_pairs, split
    from core_model.judgements import load_preferences

    try:
        pairs = read_pairs(args.data)
        judged = load_preferences(args.judged)
        written, written_file = written_pairs(args.written, args.data)
    except (DataError, OSError, ValueError) as exc:
        print(f"chatbot train: {exc}", file=sys.stderr)
        return 2
    from core_model.train import train

    command = "chatbot " + shlex.join(["train", *(argv if argv is not None else sys.argv[1:])])
    print(f"training on {len(pairs)} pairs from {args.data} -> {args.out}", file=sys.stderr)
    train_pairs, held = split(pairs)
    fit_pairs, dev = dev_split(train_pairs)
    manifest = train(fit_pairs, args.out, cfg, dev, held, judged=judged, written=written, extra_info={
        "command": command, "data": {"path": str(args.data), "sha256": file_sha256(args.data), "pairs": len(pairs)},
        **({"written": written_file} if written_file else {})})
    print(f"wrote {args.out}: version {manifest['version']}, held-out loss {manifest['heldout_loss']}, "
          f"epoch {manifest['epoch_kept']} of {manifest['epochs_trained']} kept (dev chrF {manifest['dev_chrf']})",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
