"""`chatbot reply`: one reply for a text, or one JSON line out for every JSON line in."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

BATCH = 64


def _parse(line: bytes) -> tuple[str | None, str | None]:
    """-> (text, error) for one input line; never raises."""
    try:
        obj = json.loads(line.decode("utf-8", errors="replace"))
    except ValueError as exc:
        return None, f"not a JSON object: {exc.msg}"
    if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
        return None, 'expected {"text": "..."}'
    return obj["text"], None


def _batches(stream) -> Iterator[list[bytes]]:
    """Lines in batches; interactive input is answered line by line."""
    interactive = stream.isatty() if hasattr(stream, "isatty") else False
    batch: list[bytes] = []
    for line in iter(stream.readline, b""):
        if not line.strip():
            continue
        batch.append(line)
        if interactive or len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv: list[str] | None = None) -> int:
    from bot.paths import default_model_dir
    from bot.settings import Settings

    parser = argparse.ArgumentParser(prog="chatbot reply", description=__doc__)
    parser.add_argument("text", nargs="?", help="the message (omit with --jsonl)")
    parser.add_argument("--jsonl", action="store_true", help='read {"text": ...} lines on stdin')
    parser.add_argument("--model", default=None, help="model directory (default: models/current or models/default)")
    parser.add_argument("--beam", type=int, default=Settings.beam_width,
                        help=f"beam width (default {Settings.beam_width}; 1: greedy)")
    parser.add_argument("--answer-bank", action=argparse.BooleanOptionalAction, default=Settings.answer_bank,
                        help="answer from the model's bank when an answer fits "
                             "(--no-answer-bank: generate every reply)")
    args = parser.parse_args(argv)
    if not args.jsonl and args.text is None:
        parser.error("give a TEXT or --jsonl")

    from bot.messages import USER_TEXT, Outcome
    from core_model.artifacts import ModelLoadError
    from core_model.responder import Responder
    from core_model.text import normalize

    try:
        responder = Responder(args.model or default_model_dir(), beam_width=args.beam,
                              answer_bank=args.answer_bank)
    except ModelLoadError as exc:
        print(f"chatbot reply: {exc}", file=sys.stderr)
        return 1
    if not args.jsonl:
        text = args.text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        print(responder.reply(text) if normalize(text) else USER_TEXT[Outcome.EMPTY])
        return 0
    out = sys.stdout
    for lines in _batches(sys.stdin.buffer):
        parsed = [_parse(line) for line in lines]
        todo = [i for i, (text, err) in enumerate(parsed) if err is None and normalize(text)]
        replies = dict(zip(todo, responder.reply_batch([parsed[i][0] for i in todo]) if todo else []))
        for i, (_, err) in enumerate(parsed):
            if err is None and i not in replies:
                err = "empty message: nothing to reply to"
            record = {"reply": replies[i]} if i in replies else {"error": err}
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
