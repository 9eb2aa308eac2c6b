"""`python -m tinyllm ...` as a user runs it: in a fresh process, output captured (hand-written helper)."""
import subprocess
import sys


def run_tinyllm(*args: str, stdin: str | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    "Run `python -m tinyllm *args` with this interpreter; stdout, stderr and the exit code come back as text."
    return subprocess.run([sys.executable, "-m", "tinyllm", *args], capture_output=True, text=True, input=stdin,
                          timeout=timeout)
