"""Keep native libraries' chatter out of the terminal chat.

TensorFlow's C++ runtime writes oneDNN notices and an "E0000 ... oneDNN supports DT_BOOL only ..."
line straight to file descriptor 2, before its own log level applies (`TF_CPP_MIN_LOG_LEVEL` does
not silence them). In a chat that owns the screen they look like a crash. So for the terminal
chat only, file descriptor 2 is pointed at a log file, while Python's `sys.stderr` (our warnings,
tracebacks) keeps the terminal: nothing is lost, and the chat stays readable.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

NATIVE_LOG = "native.log"


def divert_native_stderr(path: str | Path) -> Path:
    """Send what native code writes to fd 2 to `path` (appended); `sys.stderr` stays on the terminal.

    Call before anything captures `sys.stderr` (logging handlers) and before TensorFlow is imported.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                           errors="backslashreplace")
    return path
