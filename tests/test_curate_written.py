"""The written pairs never stand in for a message that measures the bot, nor carry what a bank must not."""
import json

from bot.paths import BASE_CORPUS, REPO_ROOT
from core_model.data import dev_split, read_pairs, split
from scripts import curate_written


def test_curation_keeps_only_usable_pairs_that_measure_nothing(tmp_path, capsys):
    train, held = split(read_pairs(BASE_CORPUS))
    fit, dev = dev_split(train)
    held_q, dev_q, fit_q = held[2].q, dev[0].q, fit[0].q  # "가족들이랑 여행 갈거야", "SNS 시간낭비인 ...", ...
    everyday = (REPO_ROOT / "data" / "everyday.txt").read_text(encoding="utf-8").splitlines()[0]
    new = tmp_path / "new.tsv"
    new.write_text("Q\tA\n" + "\n".join([
        "우리 동네 빵집 맛있어\t갓 구운 빵 냄새 좋죠!",
        "우리 동네 빵집 맛있어!\t또 쓴 같은 메시지예요.",          # the same message again
        f"{held_q}\t잘 될 거예요.",                           # a held-out question
        f"{dev_q}\t잘 될 거예요.",                            # a dev question
        f"{everyday}\t반가워요!",                             # an everyday message
        f"{held_q} 진짜\t잘 될 거예요.",                    # nearly a held-out question
        "사라지고 싶어\t그렇군요.",                            # a wish to die: the responder's
        "링크 봐줘\thttps://example.com 여기요.",             # a link
        "@everyone 모여\t모여요!",                            # a mention
        "한 칸만",                                           # no tab
    ]) + "\n", encoding="utf-8")
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "questions.tsv").write_text(f"id\tmessage\n1\t{fit_q}\n2\t{held_q}\n", encoding="utf-8")
    (answers / "answers.tsv").write_text("id\treply\n1\t따뜻한 답이에요.\n2\t이건 안 돼요.\n", encoding="utf-8")
    out = tmp_path / "written.csv"
    assert curate_written.main(["--answers", str(answers), "--new", str(new), "--labels", "0", "--out", str(out)]) == 0
    kept = [(p.q, p.a, p.label) for p in read_pairs(out)]
    assert kept == [(fit_q, "따뜻한 답이에요.", fit[0].label), ("우리 동네 빵집 맛있어", "갓 구운 빵 냄새 좋죠!", "0")]
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == 2 and report["dropped"] == {
        "not a training-side question": 1, "repeated message": 1, "the same as a measured message": 3,
        "nearly the same as a measured message": 1, "a wish to die": 1, "link, mention or not mostly Korean": 2,
        "malformed line": 1}
