"""Native writes to fd 2 go to the log file; Python's stderr still reaches the real stderr."""
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = """
import os, sys
from bot.native_log import divert_native_stderr
divert_native_stderr(sys.argv[1])
os.write(2, b"native chatter\\n")
print("python warning", file=sys.stderr)
os.write(1, b"stdout untouched\\n")
"""


def test_native_stderr_goes_to_the_file_python_stderr_does_not(tmp_path):
    log = tmp_path / "var" / "native.log"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(log)], cwd=REPO, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode() == "python warning\n" and proc.stdout.decode() == "stdout untouched\n"
    assert log.read_text() == "native chatter\n"
    subprocess.run([sys.executable, "-c", SCRIPT, str(log)], cwd=REPO, check=True, timeout=60)
    assert log.read_text() == "native chatter\n" * 2  # appended, never truncated
