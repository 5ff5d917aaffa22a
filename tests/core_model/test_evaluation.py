"""Response selection lists, and blind rating sheets unblinded with their key."""
import json

import numpy as np
import pytest

from core_model.evaluation import (
    read_ratings,
    selection_lists,
    selection_measures,
    selection_ranks,
    unblind,
    write_sheet,
)

PAIRS = [(f"질문 {i}", f"답 {i % 15}") for i in range(40)]


def test_each_list_holds_its_own_answer_first_and_nine_others():
    lists = selection_lists(PAIRS)
    assert lists == selection_lists(PAIRS)  # the same lists every time
    for (_, own), options in zip(PAIRS, lists):
        assert options[0] == own and len(options) == 10 and own not in options[1:]


def test_ranks_count_ties_against_the_right_answer():
    perfect = selection_ranks(lambda qs, cands: [np.arange(len(c), 0, -1) for c in cands], PAIRS)
    flat = selection_ranks(lambda qs, cands: [np.zeros(len(c)) for c in cands], PAIRS)
    assert selection_measures(perfect) == {"recall_at_1_of_10": 1.0, "mrr": 1.0}
    assert set(flat) == {10} and selection_measures(flat)["recall_at_1_of_10"] == 0.0


def test_a_sheet_hides_the_systems_and_its_key_unblinds_two_raters(tmp_path):
    messages = ["배고파", "잘 자"]
    replies = {"reference": ["밥 먹어요.", "좋은 꿈 꿔요."], "a": ["밥 먹어요.", "배고파요."],
               "b": ["네.", "\t잘\n자요"]}
    key_path = write_sheet(tmp_path / "sheet.tsv", messages, replies)
    sheet = (tmp_path / "sheet.tsv").read_text(encoding="utf-8").splitlines()
    assert sheet[0] == "id\tmessage\treply\trating" and len(sheet) == 1 + 5  # "밥 먹어요." once for two systems
    assert all(line.count("\t") == 3 and "reference" not in line for line in sheet)
    assert len(json.loads(key_path.read_text(encoding="utf-8"))["rows"]) == 5
    rating = {"밥 먹어요.": 2, "좋은 꿈 꿔요.": 2, "배고파요.": 0, "네.": 1, "잘 자요": 1}
    second = {**rating, "네.": 0}
    for name, table in (("one.tsv", rating), ("two.tsv", second)):
        (tmp_path / name).write_text("\n".join([sheet[0]] + [line + str(table[line.split("\t")[2]])
                                                              for line in sheet[1:]]) + "\n", encoding="utf-8")
    result = unblind(key_path, [tmp_path / "one.tsv", tmp_path / "two.tsv"])
    assert result["exact_agreement"] == pytest.approx(4 / 5)
    assert result["systems"]["reference"] == {"n": 2, "fitting": 1.0, "unfit": 0.0, "mean": 2.0}
    assert result["systems"]["a"] == {"n": 2, "fitting": 0.5, "unfit": 0.5, "mean": 1.0}
    assert result["systems"]["b"] == {"n": 2, "fitting": 0.0, "unfit": 0.5, "mean": 0.75}
    (tmp_path / "bad.tsv").write_text(sheet[0] + "\n" + sheet[1] + "3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2 .* is not 0, 1 or 2"):
        read_ratings(tmp_path / "bad.tsv")
