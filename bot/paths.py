"""Where things live by default: the shipped models and the data folder."""
from __future__ import annotations

import os
from pathlib import Path


def _root() -> Path:
    """The checkout (editable install), else the working directory (a plain install, the Docker image)."""
    here = Path(__file__).resolve().parents[1]
    return here if (here / "models").is_dir() else Path.cwd()


REPO_ROOT = _root()
MODELS_DIR = REPO_ROOT / "models"
BASE_CORPUS = REPO_ROOT / "data" / "ChatbotData.csv"
BASE_JUDGED = REPO_ROOT / "data" / "judged_answers.tsv"  # raters' judgements the selector learns from
WRITTEN_PAIRS = REPO_ROOT / "data" / "written_pairs.csv"  # answers written for the bank (scripts/curate_written.py)


def shown(path: str | Path) -> str:
    """A path as a manifest records it: relative to the checkout when inside it (no machine's layout)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO_ROOT)) if resolved.is_relative_to(REPO_ROOT) else str(path)


def default_model_dir(models_dir: Path = MODELS_DIR) -> Path:
    """The promoted `current` model if there is one, else the shipped `default`."""
    current = models_dir / "current"
    return current if (current / "manifest.json").exists() else models_dir / "default"


DEFAULT_DB = Path("var") / "chatbot.sqlite3"  # relative to the working directory


def default_db_path() -> Path:
    """`CHATBOT_DB`, else var/chatbot.sqlite3 in the working directory."""
    return Path(os.environ.get("CHATBOT_DB") or DEFAULT_DB)


def db_work_dir(db: str | Path) -> Path:
    """Where files that belong beside the store go (native log, retrain pairs): the SQLite file's folder,
    or var/ in the working directory for a database server (`postgresql://` URL)."""
    if str(db).startswith(("postgresql://", "postgres://")):
        return DEFAULT_DB.parent.resolve()
    return Path(db).resolve().parent
