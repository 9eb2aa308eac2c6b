"""The command line contract (tinyllm/cli.py): `python -m tinyllm ...`."""
import subprocess
import sys

import pytest

from tinyllm.cli import main
from tinyllm.data import MIN_CONVERSATIONS, generate, load_conversations


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyllm", *args], capture_output=True, text=True, timeout=120)


def test_help_lists_the_whole_contract():
    result = run("--help")
    assert result.returncode == 0
    for command in ("data", "train", "chat", "eval"):
        assert f"    {command} " in result.stdout
    assert "not built" not in result.stdout and "arrives with" not in result.stdout


def test_data_writes_a_loadable_data_set(tmp_path):
    result = run("data", "--out", str(tmp_path / "finn"), "--n", str(MIN_CONVERSATIONS), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert f"wrote {MIN_CONVERSATIONS:,} conversations" in result.stdout
    loaded = load_conversations(tmp_path / "finn")
    expected = generate(MIN_CONVERSATIONS, seed=3)
    assert all(loaded[s].to_dict() == expected[s].to_dict() for s in expected)
    assert (tmp_path / "finn" / "train.jsonl").exists()


@pytest.mark.parametrize("n", ["0", "-3", "ten", "2.5", str(MIN_CONVERSATIONS - 1)])
def test_bad_n_gets_one_line(tmp_path, n):
    result = run("data", "--out", str(tmp_path / "x"), "--n", n)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(f"argument --n: must be a whole number of at least "
                                                             f"{MIN_CONVERSATIONS:,}, got {n!r}")
    assert not (tmp_path / "x").exists()


def test_unwritable_out_gets_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = run("data", "--out", str(blocker / "finn"), "--n", str(MIN_CONVERSATIONS))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()[-1:]
    assert line.startswith(f"tinyllm data: error: cannot write {blocker / 'finn'}")
    assert blocker.read_text() == "not a directory"


def test_a_directory_with_other_files_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["data", "--out", str(tmp_path), "--n", str(MIN_CONVERSATIONS)]) == 1
    assert "not a data set directory" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
