"""`chatbot bank`: give a model directory the answer bank of a corpus's training side and a response
selector trained on it, without retraining the seq2seq model.

The bank is every pair of the base corpus that is not held out (the same leak-free split as
training, so held-out scores stay honest) plus every pair of `--pairs` files (e.g. the taught
answers from `chatbot export-pairs`, which the bot can then give at once, before any retraining).
Models trained by `chatbot train` or `chatbot retrain` already have one; this adds one to an older
model, or refreshes it.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import asdict

from bot.paths import BASE_CORPUS, BASE_JUDGED, shown
from scripts.train import add_written_option, written_pairs


def main(argv: list[str] | None = None) -> int:
    from bot.paths import default_model_dir

    parser = argparse.ArgumentParser(prog="chatbot bank", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(BASE_CORPUS),
                        help="base corpus, Q,A[,label] CSV (default: the ChatbotData copy in data/)")
    parser.add_argument("--pairs", action="append", default=[], metavar="CSV",
                        help="more pairs, all kept (e.g. from `chatbot export-pairs`); repeatable")
    add_written_option(parser)
    parser.add_argument("--model", default=None, help="model directory (default: models/current or models/default)")
    parser.add_argument("--selector-epochs", type=int, default=None, metavar="N",
                        help="train the response selector for N epochs on the bank's pairs (the dev split picks the "
                             "epoch kept; default: the shipped recipe's); 0 keeps the directory's selector")
    parser.add_argument("--selector-members", type=int, default=None, metavar="N",
                        help="dual encoders in the response selector, their fits averaged (default: the shipped "
                             "recipe's)")
    parser.add_argument("--judged", default=str(BASE_JUDGED), metavar="TSV",
                        help="raters' judgements of answers the selector also learns from (`core_model.judgements`; "
                             "'' for none; default: %(default)s)")
    args = parser.parse_args(argv)
    if args.selector_members is not None and args.selector_members < 1:
        parser.error("--selector-members must be at least 1")
    model_dir = args.model or str(default_model_dir())

    from tqdm import tqdm

    from core_model.answer_bank import AnswerBank
    from core_model.artifacts import ModelLoadError, attach_bank, attach_selector, load
    from core_model.data import DataError, dev_split, file_sha256, read_pairs, split
    from core_model.judgements import load_preferences
    from core_model.selector import SelectorConfig, train_selector

    try:
        load(model_dir)  # refuse to touch a directory that is not a valid model
        base = split(read_pairs(args.data))[0]
        taught = [p for path in args.pairs for p in read_pairs(path)]
        judged = load_preferences(args.judged)
        written, written_file = written_pairs(args.written, args.data)
    except (DataError, ModelLoadError, OSError, ValueError) as exc:
        print(f"chatbot bank: {exc}", file=sys.stderr)
        return 2
    from core_model.tokenizer import Tokenizer

    tokenizer = Tokenizer()
    triples = [(p.q, p.a, tokenizer.tokenize(p.a))
               for p in tqdm(base + taught + written, desc="tokenizing answers", unit="pair")]
    bank = AnswerBank.from_pairs(triples[:len(base) + len(taught)], triples[len(base) + len(taught):])
    command = "chatbot " + shlex.join(["bank", *(argv if argv is not None else sys.argv[1:])])
    data = [{"path": shown(path), "sha256": file_sha256(path)} for path in [args.data, *args.pairs]]
    data += [written_file] if written_file else []
    attach_bank(model_dir, bank, {"pairs": len(bank), "command": command, "data": data})
    epochs = SelectorConfig.epochs if args.selector_epochs is None else args.selector_epochs
    if epochs > 0:
        fit, dev = dev_split(base)
        members = SelectorConfig.members if args.selector_members is None else args.selector_members
        config = SelectorConfig(epochs=epochs, members=members)
        print(f"training the response selector on {len(fit) + len(taught) + len(written)} pairs ({len(dev)} dev "
              f"pairs pick the epoch)", file=sys.stderr)
        selector, history = train_selector([(p.q, p.a) for p in fit + taught + written], [(p.q, p.a) for p in dev],
                                           config, judged=judged)
        if judged:
            data.append({"path": shown(args.judged), "sha256": file_sha256(args.judged), "preferences": len(judged)})
        attach_selector(model_dir, selector, {"command": command, "data": data, "config": asdict(config),
                                              "pairs": len(fit) + len(taught) + len(written), **history})
    print(f"{model_dir}: answer bank of {len(bank)} pairs (the base corpus's held-out pairs left out)",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
