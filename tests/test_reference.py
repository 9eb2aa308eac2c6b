"""The reference runs shipped with the library (tinyllm/reference/finn, finn-cpu and mochi, written by tools/reference.py)."""
import hashlib
import importlib.util
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import tinyllm
from tinyllm.character import load_character
from tinyllm.data import generate_conversations
from tinyllm.interpret import STEERING_FILE, run_directions
from tinyllm.model import ModelConfig
from tinyllm.tokenizer import Tokenizer, train_tokenizer
from tinyllm.runs import (REFERENCE_RUNS, course_run_dir, data_fingerprint, is_finished, read_run_config,
                          read_train_log, reference_name, run_character, run_path)
from tinyllm.train import REPLY_TOKENS, TRAIN_PRESETS, course_run, trained_preset

from command_line import run_tinyllm as run
from tiny_runs import tiny_trainer

FINN_RUN = REFERENCE_RUNS / "finn"
_spec = importlib.util.spec_from_file_location("reference_tool", Path(__file__).parents[1] / "tools" / "reference.py")
reference_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference_tool)
REFERENCES = reference_tool.REFERENCES   # name: (character, preset): chapter 5's two Finns, chapter 9's Mochi
NAMES = sorted(REFERENCES)
STALE = ("a shipped reference run no longer matches the chapters: run `make reference` (finn: `python tools/reference.py finn`) and commit tinyllm/reference")


def record(name: str) -> dict:
    return json.loads((REFERENCE_RUNS / name / "reference.json").read_text())


def test_the_shipped_runs_are_the_reference_tool_s():
    assert sorted(p.name for p in REFERENCE_RUNS.iterdir() if p.is_dir() and not p.name.startswith(".")) == NAMES
    assert {character for character, _ in REFERENCES.values()} == {"finn", "mochi"}
    assert {preset for _, preset in REFERENCES.values()} == set(TRAIN_PRESETS)   # a reference for every recipe
    assert REFERENCES["finn"] == ("finn", "t4") and reference_name("finn", "cpu") == "finn-cpu"   # the book's Finn: the larger


def test_asking_for_a_reference_that_does_not_ship_says_which_do():
    with pytest.raises(ValueError, match="no reference run of mochi trained with the t4 preset.*finn, finn-cpu, mochi"):
        reference_name("mochi", "t4")


def test_the_shipped_curve_is_the_cpu_recipe_s_own():
    "Chapter 5 plots it: benchmarks/cpu_curve.py trained today's cpu recipe, the one before it, and half and twice the steps."
    curve = json.loads((REFERENCE_RUNS / "cpu_curve.json").read_text())
    recipe = TRAIN_PRESETS["cpu"]
    assert curve["recipe"] == asdict(recipe), "the cpu recipe changed: run benchmarks/cpu_curve.py (make reference)"
    points = curve["points"]
    ours = sorted((p["steps"], p["seed"]) for p in points if p["recipe"] == "cpu")
    assert ours == sorted([(recipe.steps, s) for s in (0, 1, 2)] + [(round(recipe.steps * m), 0) for m in (0.5, 2)])
    yardstick = [p for p in points if p["recipe"] != "cpu"]
    assert [p["seed"] for p in yardstick] == [0, 1, 2] and {p["steps"] for p in yardstick} == {900}
    factor = curve["slow_yardstick_run"] / (sum(p["seconds"] for p in yardstick) / len(yardstick))
    for p in points:
        assert p["seconds_at_slow_machine"] == pytest.approx(p["seconds"] * factor, rel=0.01)
        assert all(0 <= p[key] <= 1 for key in ("held_out_in_character", "hand_written_in_character",
                                                 "hand_written_after_two", "held_out_distinct"))
    times = {p["steps"]: p["seconds"] for p in points if p["recipe"] == "cpu" and p["seed"] == 0}
    assert [times[s] for s in sorted(times)] == sorted(times.values()), "more steps take longer"


@pytest.mark.parametrize("name", NAMES)
def test_every_reply_of_a_shipped_character_fits_the_room_a_chat_leaves(name):
    "Training and chat keep REPLY_TOKENS free for the reply (chapter 5): a longer reply would be cut in a chat."
    data = generate_conversations(character=load_character(REFERENCES[name][0]))
    tok = Tokenizer.load(REFERENCE_RUNS / name / "tokenizer.json")
    longest = max(len(tok.encode(reply)) + 1 for split in data.values() for reply in split["output"])   # + <|end|>
    assert longest <= REPLY_TOKENS


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_the_reference_is_trained_on_todays_data_and_tokenizer(name, tmp_path):
    "What chapters 1 and 2 produce today (the data, then the tokenizer trained on it) is what the reference learned."
    data = generate_conversations(character=load_character(REFERENCES[name][0]))
    assert data_fingerprint(data) == record(name)["data_fingerprint"], STALE
    train_tokenizer(data).save(tmp_path / "tokenizer.json")
    today = (tmp_path / "tokenizer.json").read_bytes()
    assert today == (REFERENCE_RUNS / name / "tokenizer.json").read_bytes(), STALE
    assert hashlib.sha1(today).hexdigest() == record(name)["tokenizer_sha1"]


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_is_its_preset_with_seed_0_as_it_stands(name):
    (character, preset_name), run_dir = REFERENCES[name], REFERENCE_RUNS / name
    config, preset = read_run_config(run_dir), TRAIN_PRESETS[preset_name]
    assert config["train"] == asdict(preset) | {"seed": 0}, STALE
    assert config["data"] == {"n": preset.n_conversations, "seed": 0}
    assert config["step"] == preset.steps == record(name)["steps"] and is_finished(run_dir)
    assert ModelConfig.from_dict(config["model"]) == ModelConfig.preset(preset_name, config["model"]["vocab_size"]), STALE
    assert run_character(run_dir) == load_character(character), STALE
    assert (record(name)["name"], record(name)["character"], record(name)["preset"], record(name)["seed"],
            record(name)["tinyllm_version"]) == (name, character, preset_name, 0, tinyllm.__version__)


@pytest.mark.parametrize("name", NAMES)
def test_the_record_says_where_the_reference_trained_and_for_how_long(name):
    log = read_train_log(REFERENCE_RUNS / name)
    assert record(name)["trained_on"].strip()
    assert record(name)["training_minutes"] == round(reference_tool.training_seconds(log) / 60, 1) > 0


def test_training_time_counts_each_logged_interval_once():
    log = [{"step": 25, "seconds_per_step": 2.0}, {"step": 50, "seconds_per_step": 1.0}, {"step": 60, "seconds_per_step": 3.0}]
    assert reference_tool.training_seconds(log) == 25 * 2.0 + 25 * 1.0 + 10 * 3.0


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_is_small_half_precision_weights(name):
    with safe_open(str(REFERENCE_RUNS / name / "model.safetensors"), "pt") as weights:
        tensors = [weights.get_tensor(key) for key in weights.keys()]   # the tied matrix is stored once
    assert {str(tensor.dtype) for tensor in tensors} == {"torch.float16"}
    # fp16: 2 bytes a parameter, and little besides (the t4 model's 16 MB, the cpu one's 3.5 MB)
    n_params = sum(tensor.numel() for tensor in tensors)
    files = [f for f in (REFERENCE_RUNS / name).iterdir() if f.name != STEERING_FILE]
    assert sum(f.stat().st_size for f in files) < 2 * n_params + 500_000
    # and chapter 7's topic directions, in half precision: one vector per topic, after the embeddings and each block
    with safe_open(str(REFERENCE_RUNS / name / STEERING_FILE), "pt") as steering:
        directions = [steering.get_tensor(key) for key in steering.keys()]
    config = read_run_config(REFERENCE_RUNS / name)["model"]
    assert {d.dtype for d in directions} == {torch.float16}
    assert {tuple(d.shape) for d in directions} == {(config["n_layers"] + 1, config["d_model"])}
    assert (REFERENCE_RUNS / name / STEERING_FILE).stat().st_size < 2 * sum(d.numel() for d in directions) + 20_000


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_the_shipped_directions_are_the_references_own(name, tmp_path):
    "What run_directions computes from the shipped weights and the data they trained on, and one per topic."
    import shutil

    shipped = run_directions(name)
    copy = shutil.copytree(REFERENCE_RUNS / name, tmp_path / name, ignore=shutil.ignore_patterns(STEERING_FILE))
    computed = run_directions(copy)
    assert shipped.keys() == computed.keys() == {topic.name for topic in run_character(copy).topics}
    assert all(torch.allclose(shipped[t], computed[t], atol=2e-3) for t in shipped)


def test_load_finn_gives_the_reference_in_full_precision_and_it_talks():
    finn = tinyllm.load("finn", device="cpu")
    assert {p.dtype for p in finn.model.parameters()} == {__import__("torch").float32}
    reply = finn.reply("are you hungry?", seed=0)
    assert reply and reply == reply.lower() and finn.reply("are you hungry?", seed=0) == reply


@pytest.mark.slow
def test_cli_chat_accepts_a_reference_by_name_and_load_speaks_as_its_character():
    chat = run("chat", "finn", "--prompt", "hi finn", "--seed", "0")
    assert chat.returncode == 0 and len(chat.stdout.splitlines()) == 1, chat.stderr
    assert tinyllm.load("mochi", device="cpu").reply("are you hungry?", seed=0)


@pytest.mark.slow
def test_cli_eval_scores_the_reference_by_name():
    result = run("eval", "finn-cpu", "--json", "--prompts", "20", "--seeds", "1")   # the quicker of the two Finns
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["in_character"] > 0.15   # a trained Finn (about a third), not an untrained one (0)


def test_a_directory_named_finn_is_a_run_directory_not_the_reference(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finn").mkdir()
    assert run_path("finn") == tmp_path.joinpath("finn").relative_to(tmp_path) and run_path("nothing").name == "nothing"
    assert run_path("finn") != FINN_RUN and run_path(str(tmp_path / "other")).name == "other"


def test_course_run_prefers_the_readers_finished_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINYLLM_RUNS", str(tmp_path))
    assert course_run_dir("cpu") == tmp_path / "cpu"
    assert course_run("t4", "cpu") == FINN_RUN and "reference run 'finn'" in capsys.readouterr().out
    assert course_run("cat", reference="mochi") == REFERENCE_RUNS / "mochi"
    assert course_run("cpu", reference="finn-cpu") == REFERENCE_RUNS / "finn-cpu"
    assert "reference run 'finn-cpu'" in capsys.readouterr().out

    data = generate_conversations(1_000, seed=0)
    shape = dict(n_layers=1, d_model=32, n_heads=2, d_ff=64, context_length=128, dropout=0.0)
    tiny_trainer(data, shape, steps=4, warmup_steps=1, log_every=2).fit(tmp_path / "cpu", progress=False)
    assert is_finished(tmp_path / "cpu") and course_run("t4", "cpu") == FINN_RUN, "a tiny recipe is not chapter 5's run"

    config = json.loads((tmp_path / "cpu" / "config.json").read_text())
    as_chapter_5 = config | {"train": asdict(TRAIN_PRESETS["cpu"]) | {"seed": 3}, "step": TRAIN_PRESETS["cpu"].steps}
    (tmp_path / "cpu" / "config.json").write_text(json.dumps(as_chapter_5))
    capsys.readouterr()
    assert course_run("t4", "cpu") == tmp_path / "cpu" and "your own run, " in capsys.readouterr().out
    assert trained_preset(tmp_path / "cpu") == "cpu" and trained_preset(tmp_path / "t4") is None

    (tmp_path / "cpu" / "config.json").write_text(json.dumps(as_chapter_5 | {"step": 700}))   # stopped half way
    assert not is_finished(tmp_path / "cpu") and course_run("t4", "cpu") == FINN_RUN
