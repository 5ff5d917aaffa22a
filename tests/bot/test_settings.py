"""Settings from the environment and TOML: Discord sharding (shard_count, shard_ids) and its error cases."""
import pytest

from bot.settings import SettingsError, load_settings


def toml(tmp_path, text: str):
    path = tmp_path / "chatbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_sharding_by_default():
    settings = load_settings(env={})
    assert settings.shard_count == 0 and settings.shard_ids == ()


def test_shards_from_the_environment():
    settings = load_settings(env={"CHATBOT_SHARD_COUNT": "4", "CHATBOT_SHARD_IDS": " 2, 3 "})
    assert settings.shard_count == 4 and settings.shard_ids == (2, 3)
    every = load_settings(env={"CHATBOT_SHARD_COUNT": "2"})  # no ids: this process runs them all
    assert every.shard_count == 2 and every.shard_ids == ()


def test_shards_from_toml_as_a_list_or_text_and_the_environment_wins(tmp_path):
    path = toml(tmp_path, "shard_count = 4\nshard_ids = [0, 1]\n")
    assert load_settings(path, env={}).shard_ids == (0, 1)
    assert load_settings(toml(tmp_path, 'shard_count = 4\nshard_ids = "3"\n'), env={}).shard_ids == (3,)
    settings = load_settings(path, env={"CHATBOT_SHARD_IDS": "2,3"})
    assert settings.shard_count == 4 and settings.shard_ids == (2, 3)


@pytest.mark.parametrize("env, message", [
    ({"CHATBOT_SHARD_IDS": "0,1"}, r"shard_ids: needs shard_count \(CHATBOT_SHARD_COUNT\)"),
    ({"CHATBOT_SHARD_COUNT": "4", "CHATBOT_SHARD_IDS": "3,4"}, r"shard_ids: 4 is outside 0\.\.3 \(shard_count is 4\)"),
    ({"CHATBOT_SHARD_COUNT": "4", "CHATBOT_SHARD_IDS": "1,2,1"}, "shard_ids: 1 is listed twice"),
    ({"CHATBOT_SHARD_COUNT": "4", "CHATBOT_SHARD_IDS": "0,-1"}, r"shard_ids \(\$CHATBOT_SHARD_IDS\): expected whole"),
    ({"CHATBOT_SHARD_COUNT": "4", "CHATBOT_SHARD_IDS": "0;1"}, r"shard_ids .*'0;1' is not"),
    ({"CHATBOT_SHARD_COUNT": "four"}, r"shard_count \(\$CHATBOT_SHARD_COUNT\): expected a number"),
    ({"CHATBOT_SHARD_COUNT": "-2"}, r"shard_count .*expected a number >= 0"),
])
def test_bad_shards_in_the_environment_name_the_key(env, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(env=env)


@pytest.mark.parametrize("text, message", [
    ("shard_ids = [0]\n", "shard_ids: needs shard_count"),
    ("shard_count = 2\nshard_ids = [0, 2]\n", r"2 is outside 0\.\.1"),
    ("shard_count = 2\nshard_ids = [1, 1]\n", "1 is listed twice"),
    ("shard_count = 2\nshard_ids = [0.5]\n", r"shard_ids \(.*chatbot.toml\): expected whole numbers >= 0 \(0.5"),
    ("shard_count = 2\nshard_ids = [true]\n", "expected whole numbers"),
    ("shard_count = 2\nshard_ids = 1\n", "expected a list or comma-separated whole numbers"),
])
def test_bad_shards_in_toml_name_the_key(tmp_path, text, message):
    with pytest.raises(SettingsError, match=message):
        load_settings(toml(tmp_path, text), env={})
