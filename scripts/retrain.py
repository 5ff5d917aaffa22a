"""`chatbot retrain`: base corpus + logged pairs -> a new model version, promoted only if not worse.

The held-out split is computed on the base corpus exactly as for the shipped model, so held-out
losses are comparable; logged pairs only ever go to training (repeated `--pair-weight` times).
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

from scripts.train import add_train_options, train_config


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
    from core_model.tokenizer import Tokenizer
    from core_model.train import train

    try:
        base, logged = read_pairs(args.base), read_pairs(args.pairs)
    except DataError as exc:
        print(f"chatbot retrain: {exc}", file=sys.stderr)
        return 2
    models_dir = Path(args.models_dir)
    baseline_dir = Path(args.compare_to) if args.compare_to else default_model_dir(models_dir)
    out = Path(args.out or models_dir / ("v" + datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")))
    tokenizer = Tokenizer()
    base_train, held = split(base)
    base_train, dev = dev_split(base_train)
    cfg = train_config(args)
    print(f"retraining on {len(base_train)} base + {len(logged)} logged pairs (x{args.pair_weight}), "
          f"{len(held)} held out -> {out}", file=sys.stderr)
    manifest = train(base_train + logged * args.pair_weight, out, cfg, dev, held, tokenizer=tokenizer,
                     extra_info={"command": "chatbot retrain " + " ".join(map(shlex.quote, argv or sys.argv[1:])),
                                 "logged_pairs": len(logged), "pair_weight": args.pair_weight})
    new_loss = manifest["heldout_loss"]  # measured by train() the same way, on the same pairs
    old_loss = heldout_loss_of(baseline_dir, held, tokenizer) if (baseline_dir / "manifest.json").exists() else None
    print(f"held-out loss: new {new_loss}, current {old_loss} ({baseline_dir})", file=sys.stderr)
    manifest.update(compared_to={"path": str(baseline_dir), "heldout_loss": old_loss})
    write_manifest(out, manifest)
    if old_loss is not None and new_loss > old_loss:
        print(f"not promoted: the new model is worse on the held-out split; {baseline_dir} stays current",
              file=sys.stderr)
        return 3
    promote(models_dir, out)
    print(f"promoted {out} as {models_dir / 'current'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
