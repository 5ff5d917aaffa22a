"""Scheduled retraining: a child process at low priority, the model hot-reloaded when promoted, kept when not."""
import asyncio
import json
import os
import shutil
import sys

import pytest

from bot.retrainer import Retrainer, parse_duration
from bot.settings import SettingsError, load_settings
from bot.worker import InferenceWorker, WorkerConfig, load_engine

# What `chatbot retrain` does when it promotes: a new version directory, then `current` moved to it.
PROMOTE = """
import json, os, shutil, sys
models, source = sys.argv[1], sys.argv[2]
shutil.copytree(source, os.path.join(models, "v2"))
manifest_path = os.path.join(models, "v2", "manifest.json")
manifest = json.load(open(manifest_path))
manifest["version"] = "retrained-v2"
json.dump(manifest, open(manifest_path, "w"))
os.symlink("v2", os.path.join(models, ".next"))
os.replace(os.path.join(models, ".next"), os.path.join(models, "current"))
assert os.nice(0) >= 10, "the retrain child runs at low priority"
"""


def test_durations_and_their_setting():
    assert [parse_duration(t) for t in ("", "0", "90s", "30m", "24h", "2d", "3600", "1.5h")] == \
        [0, 0, 90, 1800, 86400, 172800, 3600, 5400]
    with pytest.raises(ValueError):
        parse_duration("soon")
    assert load_settings(env={"CHATBOT_RETRAIN_EVERY": "24h"}).retrain_every == "24h"
    with pytest.raises(SettingsError, match="retrain_every"):
        load_settings(env={"CHATBOT_RETRAIN_EVERY": "every day"})


@pytest.fixture()
async def serving(tmp_path, tiny_model_dir):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copytree(tiny_model_dir, models / "v1")
    os.symlink("v1", models / "current")
    worker = InferenceWorker(models / "current", WorkerConfig(batch_window_ms=1),
                             engine_factory=lambda path: load_engine(path, beam_width=1))
    await worker.start()
    yield models, worker
    await worker.stop()


async def test_a_promoted_retrain_is_hot_reloaded_without_dropping_requests(serving, tiny_model_dir, tiny_pairs):
    models, worker = serving
    old = worker.version
    retrainer = Retrainer(0.2, [[sys.executable, "-c", "import time; time.sleep(1)"],
                                [sys.executable, "-c", PROMOTE, str(models), str(tiny_model_dir)]],
                          on_promoted=lambda: worker.reload(models / "current"))
    stopping = asyncio.Event()
    schedule = asyncio.create_task(retrainer.run_forever(stopping))
    answers = []
    while retrainer.status.last_outcome is None:  # keep asking while the child runs and the model swaps
        answers.append(await worker.reply(tiny_pairs[len(answers) % 10].q))
    stopping.set()
    await schedule
    assert retrainer.status.last_outcome == "promoted" and retrainer.status.runs == 1
    assert len(answers) > 3 and all(a.ok for a in answers)
    assert worker.version == "retrained-v2" != old
    assert (await worker.reply(tiny_pairs[0].q)).model_version == "retrained-v2"
    described = retrainer.status.describe()
    assert described["last_outcome"] == "promoted" and described["last_finished"].endswith("Z")
    assert json.loads((models / "v2" / "manifest.json").read_text())["version"] == "retrained-v2"


async def test_a_failed_or_refused_retrain_leaves_the_serving_model(serving, tiny_pairs):
    models, worker = serving
    old = worker.version
    reloads = []

    async def reload():
        reloads.append(1)

    failing = Retrainer(3600, [[sys.executable, "-c", "import sys; sys.exit('boom: no pairs to learn')"]], reload)
    outcome = await failing.run_once()
    assert outcome.startswith("failed:") and "exited 1" in outcome and "boom: no pairs to learn" in outcome
    refused = Retrainer(3600, [[sys.executable, "-c", "import sys; sys.exit(3)"]], reload)
    assert await refused.run_once() == "not promoted"
    assert reloads == [] and worker.version == old and (await worker.reply(tiny_pairs[0].q)).ok


def test_a_database_url_reaches_export_pairs_by_environment_not_on_its_command_line(tmp_path):
    from bot.retrainer import child_env, default_commands

    url = "postgresql://bot:pa55@db:5432/chatbot"
    assert not any("pa55" in arg for argv in default_commands(url, tmp_path) for arg in argv)
    assert child_env(url)["CHATBOT_DB"] == url
    sqlite = str(tmp_path / "db.sqlite3")
    assert ["--db", sqlite] == default_commands(sqlite, tmp_path)[0][4:6] and child_env(sqlite) is None
