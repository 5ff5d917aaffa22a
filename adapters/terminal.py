"""The terminal adapter (`chatbot chat`, `chatbot serve` without tokens): a conversation on stdin/stdout.

`TerminalSession.handle_line` is the whole behaviour, so tests drive it like a conversation: a line
becomes an `Incoming` for the pipeline, a `/command` one of the pipeline's other actions. With a
terminal attached it shows prompts; otherwise it reads one message per line and prints one reply
per line, so it can be scripted. The wiring for `chatbot chat` is chatbot/chat.py.
"""
from __future__ import annotations

import asyncio
import sys
import threading

from bot.messages import Incoming
from bot.pipeline import Pipeline

HELP = ("commands: /good /bad (mark the last reply), /teach <answer>, /forget (delete my data), /quit; "
        "admins: /approve [id] /reject id (taught answers)")


class TerminalSession:
    platform = "terminal"
    channel = "terminal"

    def __init__(self, pipeline: Pipeline, user_id: str) -> None:
        self.pipeline = pipeline
        self.user_id = user_id

    async def handle_line(self, line: str) -> str | None:
        """The bot's answer to one input line (None for /quit)."""
        line = line.rstrip("\r\n")
        if line.startswith("/"):
            return await self._command(line)
        answers: list[str] = []

        async def show(text: str) -> None:
            answers.append(text)

        msg = Incoming(self.platform, self.user_id, line, raw_text=line, channel=self.channel, private=True)
        await self.pipeline.handle(msg, show)
        return "\n".join(answers)

    async def _command(self, line: str) -> str | None:
        name, _, arg = line.partition(" ")
        if name in ("/quit", "/exit"):
            return None
        if name == "/help":
            return HELP
        if not self.pipeline.remembers:
            return "저장소가 꺼져 있어서 이 명령을 쓸 수 없어요."
        if name in ("/good", "/bad"):
            ok = await self.pipeline.feedback(self.platform, self.user_id, name[1:], channel=self.channel)
            return ("고마워요! 의견을 기록했어요." if name == "/good" else "알려 줘서 고마워요. 더 나아질게요.") \
                if ok else "아직 표시할 답이 없어요."
        if name in ("/teach", "/approve", "/reject"):
            return await self.pipeline.command(Incoming(self.platform, self.user_id, line, channel=self.channel,
                                                        private=True, command=name[1:]))
        if name == "/forget":
            n = await self.pipeline.forget(self.platform, self.user_id)
            return f"대화 기록 {n}개를 모두 지웠어요."
        return f"모르는 명령이에요. {HELP}"


def _read_lines(stdin) -> asyncio.Queue:
    """Lines of `stdin` on a daemon thread ("" at end of file).

    Not the default executor: a thread blocked in readline() would keep the process alive after
    Ctrl-C or SIGTERM until the user pressed Enter.
    """
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue = asyncio.Queue()

    def pump() -> None:
        while True:
            line = stdin.readline()
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop is gone
                return
            if not line:
                return

    threading.Thread(target=pump, name="terminal-stdin", daemon=True).start()
    return lines


async def run_terminal(pipeline: Pipeline, user_id: str, stdin=None, stdout=None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    interactive = stdin.isatty() and stdout.isatty()
    session = TerminalSession(pipeline, user_id)
    lines = _read_lines(stdin)
    if interactive:
        stdout.write(f"한국어 챗봇 (모델 {pipeline.model_version}). {HELP}\n")
    while True:
        if interactive:
            stdout.write("나> ")
            stdout.flush()
        line = await lines.get()
        if not line:  # EOF
            break
        if not interactive and not line.strip():
            continue
        answer = await session.handle_line(line)
        if answer is None:
            break
        stdout.write(("봇> " if interactive else "") + answer.replace("\n", " ") + "\n")
        stdout.flush()
    return 0


def prepare_screen(db: str) -> None:
    """Before an interactive chat loads the model: TensorFlow's native chatter goes to a log file
    beside the store (`bot.native_log`), and the user is told what the wait is for."""
    from pathlib import Path

    from bot.native_log import NATIVE_LOG, divert_native_stderr

    log = divert_native_stderr(Path(db).parent / NATIVE_LOG)
    print(f"모델을 불러오는 중이에요 (loading the model, about 20 seconds; TensorFlow's own messages go to {log})...",
          file=sys.stderr, flush=True)
