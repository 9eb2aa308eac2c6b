"""The command line contract (tinyllm/cli.py): `python -m tinyllm ...`."""
import re

import pytest

from tinyllm.cli import main
from tinyllm.characters import MOCHI
from tinyllm.character import SPECS, load_character
from tinyllm.data import MIN_CONVERSATIONS, generate_conversations, load_conversations

from command_line import run_tinyllm as run

FINN = load_character("finn")

pytestmark = pytest.mark.slow   # every command starts Python and PyTorch afresh


# The command line contract (cli.py's docstring; DESIGN.md's, less `finetune` and `chat --steer`, which are not
# built): each command, and what its --help lists
CONTRACT = {
    "data": ["--out DIR", "--character", "--n", "--seed"],
    "train": ["--preset {cpu,t4}", "--out RUN", "--character", "--steps", "--seed", "--resume", "--device", "--data",
              "--timeout"],
    "chat": ["RUN", "--prompt TEXT", "--single-turn", "--seed", "--temperature", "--top-k", "--top-p",
             "--max-new-tokens", "--device"],
    "eval": ["RUN", "--prompts", "--seeds", "--json", "--device"],
    "export": ["RUN", "--to {hf,onnx,web}", "OUT", "--force"],
}


def test_help_lists_the_whole_contract():
    result = run("--help")
    assert result.returncode == 0
    assert set(CONTRACT) <= set(re.findall(r"^    (\w+) ", result.stdout, re.MULTILINE))
    for command, options in CONTRACT.items():
        result = run(command, "--help")
        assert result.returncode == 0, result.stderr
        for option in options:   # on a line of its own, where argparse describes it
            assert re.search(rf"^  {re.escape(option)}(\s|$)", result.stdout, re.MULTILINE), (command, option)


def test_data_writes_a_loadable_data_set(tmp_path):
    result = run("data", "--out", str(tmp_path / "finn"), "--n", str(MIN_CONVERSATIONS), "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert f"wrote {MIN_CONVERSATIONS:,} conversations" in result.stdout
    loaded = load_conversations(tmp_path / "finn")
    expected = generate_conversations(MIN_CONVERSATIONS, seed=3)
    assert all(loaded[s].to_dict() == expected[s].to_dict() for s in expected)
    assert (tmp_path / "finn" / "train.jsonl").exists()


def test_data_writes_the_character_asked_for(tmp_path):
    result = run("data", "--out", str(tmp_path / "mochi"), "--n", str(MIN_CONVERSATIONS), "--character", "mochi")
    assert result.returncode == 0, result.stderr
    loaded = load_conversations(tmp_path / "mochi")
    expected = generate_conversations(MIN_CONVERSATIONS, seed=0, character=MOCHI)
    assert all(loaded[s].to_dict() == expected[s].to_dict() for s in expected)
    assert set(loaded["train"]["category"]) == {t.name for t in MOCHI.topics} != {t.name for t in FINN.topics}


def test_data_reads_a_spec_file(tmp_path):
    spec = tmp_path / "my_mochi.yaml"
    spec.write_text((SPECS / "mochi.yaml").read_text())
    result = run("data", "--out", str(tmp_path / "out"), "--n", str(MIN_CONVERSATIONS), "--character", str(spec))
    assert result.returncode == 0, result.stderr
    assert load_conversations(tmp_path / "out")["train"].to_dict() == \
        generate_conversations(MIN_CONVERSATIONS, character=MOCHI)["train"].to_dict()


@pytest.mark.parametrize("command", ["data", "train"])
@pytest.mark.parametrize("character, message", [
    ("nemo", "no character named 'nemo': name one of finn, mochi"),
    ("bad.yaml", "bad.yaml has 1 problem(s):\n  line LINE: vocatives: must be a list of text, got 'mochi'"),
    ("missing.yaml", "no character spec at"),
])
def test_a_bad_character_gets_a_short_error(tmp_path, command, character, message):
    lines = (SPECS / "mochi.yaml").read_text().splitlines()
    vocatives = next(i for i, line in enumerate(lines) if line.startswith("vocatives:"))
    lines[vocatives] = "vocatives: mochi"                     # a word where a list belongs
    (tmp_path / "bad.yaml").write_text("\n".join(lines) + "\n")
    message = message.replace("LINE", str(vocatives + 1))
    if character.endswith(".yaml"):
        character = str(tmp_path / character)
    preset = ["--preset", "cpu"] if command == "train" else []
    result = run(command, "--out", str(tmp_path / "out"), "--character", character, *preset)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith(f"tinyllm {command}: error: ") and message in result.stderr
    assert len(result.stderr.splitlines()) == 1 + message.count("\n"), "one line, then the spec's problems"
    assert not (tmp_path / "out").exists()


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
