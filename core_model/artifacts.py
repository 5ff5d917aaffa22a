"""A model directory: weights, vocabulary and a manifest that pins both by sha256.

Only weights are saved (`model.weights.h5`); the architecture is rebuilt in code from the
manifest's config. Nothing is deserialized as code, so no Keras `safe_mode` bypass can apply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core_model.answer_bank import BANK, AnswerBank
from core_model.data import file_sha256
from core_model.model import ModelConfig, Seq2Seq, build_model
from core_model.selector import FEATURES as SELECTOR_FEATURES
from core_model.selector import WEIGHTS as SELECTOR_WEIGHTS
from core_model.selector import Selector
from core_model.vocab import Vocab

WEIGHTS = "model.weights.h5"
VOCAB = "vocab.json"
MANIFEST = "manifest.json"


class ModelLoadError(RuntimeError):
    """The directory is not a usable model; the message says why."""


@dataclass
class LoadedModel:
    model: Seq2Seq
    vocab: Vocab
    manifest: dict
    path: Path
    bank: AnswerBank | None = None  # human answers the responder may choose; None: generation only
    selector: Selector | None = None  # which bank answer fits a message (with the bank)

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unknown"))


def save(out_dir: str | Path, model: Seq2Seq, vocab: Vocab, info: dict, bank: AnswerBank | None = None,
         selector: Selector | None = None) -> dict:
    """Write weights, vocabulary, the answer bank and selector if any, and the manifest (last, so a
    half-written directory never verifies)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bare = build_model(model.config)  # an uncompiled twin: the file holds no optimizer state
    bare.set_weights(model.get_weights())
    bare.save_weights(out / WEIGHTS)
    vocab.save(out / VOCAB)
    if bank is not None:
        bank.save(out / BANK)
    if selector is not None:
        selector.save(out)
    manifest = {
        "version": info.pop("version", None) or datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": model.config.to_dict(),
        **info,
    }
    return write_manifest(out, manifest)


def write_manifest(out: Path, manifest: dict) -> dict:
    """Pin every model file by sha256 and replace the manifest atomically."""
    names = [WEIGHTS, VOCAB] + [n for n in (BANK, SELECTOR_WEIGHTS, SELECTOR_FEATURES) if (out / n).is_file()]
    manifest = {**manifest, "files": {name: file_sha256(out / name) for name in names}}
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    tmp.replace(out / MANIFEST)
    return manifest


def attach_bank(model_dir: str | Path, bank: AnswerBank, info: dict) -> dict:
    """Give an existing model directory a (new) answer bank, without retraining; `info` goes in the manifest."""
    out = Path(model_dir)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    bank.save(out / BANK)
    return write_manifest(out, {**manifest, "bank": info})


def attach_selector(model_dir: str | Path, selector: Selector, info: dict) -> dict:
    """Give an existing model directory a (new) response selector; `info` goes in the manifest."""
    out = Path(model_dir)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    selector.save(out)
    return write_manifest(out, {**manifest, "selector": info})


def load(model_dir: str | Path) -> LoadedModel:
    """Load and verify a model directory, or raise ModelLoadError with the reason."""
    path = Path(model_dir)
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: no {MANIFEST} (not a model directory)") from None
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: unreadable {MANIFEST}: {exc}") from exc
    files = manifest.get("files", {})
    for name in dict.fromkeys([WEIGHTS, VOCAB, *files]):
        if not (path / name).is_file():
            raise ModelLoadError(f"{path}: missing {name}")
    for name, digest in files.items():
        if file_sha256(path / name) != digest:
            raise ModelLoadError(f"{path}: {name} does not match its sha256 in the manifest (corrupt or replaced)")
    try:
        config = ModelConfig.from_dict(manifest["config"])
        vocab = Vocab.load(path / VOCAB)
    except (KeyError, TypeError, ValueError, OSError) as exc:
        raise ModelLoadError(f"{path}: bad config or vocabulary: {exc}") from exc
    if len(vocab) != config.vocab_size:
        raise ModelLoadError(
            f"{path}: vocabulary mismatch: {len(vocab)} tokens but the model expects {config.vocab_size}")
    model = build_model(config)
    try:
        model.load_weights(path / WEIGHTS)
    except Exception as exc:  # h5py/keras raise many types for damaged files
        raise ModelLoadError(f"{path}: cannot load weights: {exc}") from exc
    bank = None
    if BANK in files:
        try:
            bank = AnswerBank.load(path / BANK)
            if bank.answer_tokens is None:
                raise ValueError("it has no answer_tokens for the model to score")
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise ModelLoadError(f"{path}: bad answer bank: {exc}") from exc
    selector = None
    if bank is not None and SELECTOR_WEIGHTS in files and SELECTOR_FEATURES in files:
        try:
            selector = Selector.load(path)
        except Exception as exc:  # h5py/keras raise many types for damaged files
            raise ModelLoadError(f"{path}: bad response selector: {exc}") from exc
    return LoadedModel(model, vocab, manifest, path, bank, selector)
