"""Chapter 9 and chapter 1's spec checks: a character is data, validated before it is generated."""
import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinyllm.characters import MOCHI
from tinyllm.character import (SLOT, SPECS, Character, Topic, character_problems, character_yaml, check_character,
                               load_character)
from tinyllm.data import generate_conversations, lint
from tinyllm.evaluate import evaluate_run
from tinyllm.runs import run_character

from tiny_runs import tiny_trainer

FINN = load_character("finn")


def test_both_characters_pass_the_checks():
    assert character_problems(FINN) == [] and character_problems(MOCHI) == []
    assert MOCHI.name == "mochi" and len(MOCHI.topics) >= 20 and MOCHI.world_words


@pytest.mark.parametrize("change, message", [
    (dict(topics=[]), "at least 2 topics"),
    (dict(topics=MOCHI.topics[:1]), "at least 2 topics"),
    (dict(topics=MOCHI.topics + MOCHI.topics[:1]), "'greeting' is defined 2 times"),
    (dict(pools={**MOCHI.pools, "food": []}), "pool 'food' is empty"),
    (dict(pools={**MOCHI.pools, "mood": ["sleepy", " "]}), "pool 'mood' is empty or has an empty word"),
    (dict(pools={k: v for k, v in MOCHI.pools.items() if k != "thing"}), "slot {thing}"),
    (dict(closers=["i want {snack}."]), "closers: slot {snack}"),
    (dict(name="Mochi"), "lowercase"),
    (dict(vocatives=[]), "vocatives is empty"),
    (dict(generic_asks=["tell me more"]), "{keyword}"),
    (dict(min_reply_words=5, max_reply_words=3), "1 <= min <= max"),
    (dict(topics=MOCHI.topics + [Topic("yarn", asks=("do you like yarn?",), replies=("yes.",))]), "at least 2 asks"),
    (dict(topics=MOCHI.topics + [Topic("yarn", asks=("yarn?", "more yarn?"), replies=())]), "'yarn' has no replies"),
])
def test_a_broken_spec_gets_a_clear_error_before_any_data(change, message):
    broken = dataclasses.replace(MOCHI, **change)
    with pytest.raises(ValueError, match="problem") as error:
        generate_conversations(n=1_000, character=broken)
    assert message in str(error.value)
    assert "Traceback" not in str(error.value) and "KeyError" not in str(error.value)


def test_every_problem_is_listed_at_once():
    broken = Character(name="Rex", topics=[Topic("bones", asks=("bones?",), replies=("{bone}.",))],
                       pools={"treat": []}, vocatives=["rex"], openers=["hey"], interjections=[], closers=[],
                       generic_asks=["{keyword}?"])
    problems = character_problems(broken)
    assert problems == [
        "name must be lowercase and not empty, got 'Rex'",
        "a character needs at least 2 topics, it has 1",
        "pool 'treat' is empty or has an empty word",
        "topic 'bones' needs at least 2 asks (one is held out for testing), it has 1",
        "topic 'bones': slot {bone} in '{bone}.' has no pool (pools: treat)",
    ]
    with pytest.raises(ValueError) as error:
        check_character(broken)
    assert all(p in str(error.value) for p in problems)


def test_slot_pattern_maps_numbered_slots_to_their_pool():
    assert SLOT.findall("{food} and {food2}, {spot}") == ["food", "food", "spot"]


def test_mochi_generates_lints_and_trains_on_a_tiny_budget(tmp_path):
    data = generate_conversations(n=2_000, seed=0, character=MOCHI)
    assert lint(data, MOCHI) == []
    assert set(data["train"]["category"]) == {t.name for t in MOCHI.topics}
    shape = dict(n_layers=2, d_model=64, n_heads=4, d_ff=128, context_length=128, dropout=0.0)
    trainer = tiny_trainer(data, shape, steps=200, warmup_steps=20, log_every=50, data_source={"n": 2_000, "seed": 0},
                           character=MOCHI)
    first = trainer.evaluate(trainer.valid_examples)["loss"]
    trainer.fit(tmp_path / "run", progress=False)
    assert trainer.evaluate(trainer.valid_examples)["loss"] < first - 1.0
    assert run_character(tmp_path / "run") == MOCHI              # the run keeps the character it learned
    scores = evaluate_run(tmp_path / "run", n_prompts=10, seeds=(0,), device="cpu")   # `python -m tinyllm eval`
    assert scores["format_ok"] > 0.5   # the voice comes first (chapter 8)
    assert "fresh_in_character" not in scores, "Mochi has no fresh questions: Finn's are not asked"


def test_generate_explains_a_topic_whose_every_wording_spells_out_the_held_out_one():
    "'hi, mochi' is 'hi' with a name: if 'hi' is held out, training has nothing left to ask about the topic."
    hello = Topic("hello", asks=("hi", "hi, mochi"), replies=("mrrp.",))
    spec = dataclasses.replace(MOCHI, topics=MOCHI.topics + [hello])
    errors = []
    for seed in range(10):
        try:
            generate_conversations(1_000, seed, spec)
        except ValueError as error:
            errors.append(str(error))
    assert errors and all("hello" in e and "held-out" in e for e in errors)


# --- spec files: load_character ---------------------------------------------------------------

REX = """\
name: rex
vocatives: [rex, good boy]
openers: [hey, so]
interjections: [woof.]
generic_asks:
  - what about {keyword}?
  - tell me about {keyword}
pools:
  treat: [a bone, a biscuit]
topics:
  - name: food
    asks:
      - are you hungry?
      - do you want {treat}?
    replies:
      - yes. {treat} please.
    keywords: [food, treats]
  - name: walks
    asks:
      - walk?
      - do you want a walk?
    replies:
      - walk! yes!
"""
WALKS_ASKS = "    asks:\n      - walk?\n      - do you want a walk?\n"


def spec_file(tmp_path, text: str) -> Path:
    path = tmp_path / "rex.yaml"
    path.write_text(text)
    return path


def spec_problems(path: Path) -> list[str]:
    "The problems load_character lists for `path`, checking they come as one ValueError that counts them."
    with pytest.raises(ValueError) as error:
        load_character(path)
    assert type(error.value) is ValueError, "a plain ValueError: the CLI prints it as one error"
    first, *problems = str(error.value).split("\n")
    assert first == f"{path} has {len(problems)} problem(s):"
    assert all(p.startswith("  ") for p in problems)
    return [p.strip() for p in problems]


def test_a_small_spec_loads(tmp_path):
    rex = load_character(spec_file(tmp_path, REX))
    assert rex.name == "rex" and [t.name for t in rex.topics] == ["food", "walks"]
    assert rex.topics[0].asks == ("are you hungry?", "do you want {treat}?")
    assert rex.topics[0].keywords == ("food", "treats") and rex.topics[1].keywords == ()
    assert rex.pools == {"treat": ["a bone", "a biscuit"]} and rex.closers == [] and rex.fresh_questions == {}


def test_a_spec_with_only_the_required_keys_generates(tmp_path):
    "interjections, closers, pools, ... may be left out: what loads must also generate."
    rex = load_character(spec_file(tmp_path, REX.replace("interjections: [woof.]\n", "")))
    assert lint(generate_conversations(1_000, character=rex), rex) == []


# Each case: how REX is changed, and the problems the error lists. Every problem names its line:
# shape problems the key's, content problems (found once the shape is right) their topic's or field's.
@pytest.mark.parametrize("old, new, problems", [
    pytest.param("vocatives: [rex, good boy]\n", "", ["line 1: missing key vocatives:"], id="missing key"),
    pytest.param(WALKS_ASKS, "    asks: walk?\n",
                 ["line 19: topics[1] (walks).asks: must be a list of text, got 'walk?'"], id="text for a list"),
    pytest.param("openers: [hey, so]", "openers: [hey, so, yes]",
                 ["line 3: openers[2]: must be text, got true, a yes/no value (put text such as yes or no in quotes)"],
                 id="yes read as true"),
    pytest.param("    keywords: [food, treats]\n", "    keywords:\n",
                 ["line 17: topics[0] (food).keywords: must be a list of text, got nothing"], id="key with nothing"),
    pytest.param("    replies:\n      - walk! yes!", "    replys:\n      - walk! yes!",
                 ["line 18: topics[1] (walks): missing key replies:", "line 22: topics[1] (walks).replys: unknown key"],
                 id="misspelt key"),
    pytest.param("name: rex", "name: 7", ["line 1: name: must be text, got the number 7"], id="number for text"),
    pytest.param("name: rex", "name: rex\nmax_reply_words: yes",
                 ["line 2: max_reply_words: must be a whole number, got true, a yes/no value"], id="yes for a number"),
    pytest.param("pools:\n", "pools:\n  snacks: cheese\n",
                 ["line 9: pools.snacks: must be a list of text, got 'cheese'"], id="text for a pool"),
    pytest.param("name: rex", "name: rex\ncolour: brown", ["line 2: colour: unknown key (known: name, topics,"],
                 id="unknown key"),
    pytest.param("pools:\n", "pools:\n  yes: [a]\n",
                 ["line 8: pools: every key must be text, got true, a yes/no value"], id="yes as a key"),
    pytest.param("      - walk! yes!\n", "      - walk! yes!\n  - just text\n",
                 ["line 24: topics[2]: must be a mapping with keys name, asks, replies, got 'just text'"],
                 id="text for a topic"),
    pytest.param("  - name: walks\n", "  - name: food\n", ["line 18: topic 'food' is defined 2 times"],
                 id="a topic twice"),
    pytest.param("name: rex", "name: rex\nmax_reply_words: 0",
                 ["line 2: reply length bounds must satisfy 1 <= min <= max, got 2, 0"], id="bounds"),
    pytest.param("openers: [hey, so]\n", "openers: [hey, so]\nvocatives: [rex]\n",
                 ["line 4: vocatives is given twice"], id="key given twice"),
    pytest.param("yes. {treat} please.", "yes. {snack} please.",
                 ["line 11: topic 'food': slot {snack} in 'yes. {snack} please.' has no pool (pools: treat)"],
                 id="unknown pool"),
    pytest.param("yes. {treat} please.", "yes. {Treat} please.",
                 ["line 11: topic 'food': {Treat} in 'yes. {Treat} please.' is not a slot"], id="not a slot"),
    pytest.param("yes. {treat} please.", "Yes. {treat} please.",
                 ["line 11: topic 'food': 'Yes. {treat} please.' is not plain lowercase text"], id="reply rule"),
    pytest.param("vocatives: [rex, good boy]", "vocatives: []", ["line 2: vocatives is empty"], id="empty vocatives"),
    pytest.param(WALKS_ASKS, "    asks: []\n",
                 ["line 18: topic 'walks' needs at least 2 asks (one is held out for testing), it has 0"],
                 id="empty asks"),
])
def test_a_broken_spec_file_gets_one_clear_error(tmp_path, old, new, problems):
    assert old in REX
    listed = spec_problems(spec_file(tmp_path, REX.replace(old, new, 1)))
    assert len(listed) == len(problems) and all(p.startswith(e) for p, e in zip(listed, problems)), listed


def test_every_shape_problem_is_listed_at_once_in_line_order(tmp_path):
    text = (REX.replace("name: rex\n", "")
            .replace("openers: [hey, so]", "openers: [hey, so, no]")
            .replace("    keywords: [food, treats]\n", "    keywords:\n")
            .replace(WALKS_ASKS, "    asks: walk?\n"))
    problems = spec_problems(spec_file(tmp_path, text))
    assert [p.split(":")[0] for p in problems] == ["line 1", "line 2", "line 16", "line 18"], problems
    assert "missing key name:" in problems[0] and "openers[2]: must be text, got false" in problems[1]
    assert "(food).keywords" in problems[2] and "(walks).asks" in problems[3]


def test_every_content_problem_is_listed_at_once_in_line_order(tmp_path):
    text = (REX.replace("vocatives: [rex, good boy]", "vocatives: []")
            .replace("yes. {treat} please.", "yes. {snack} please.")
            .replace(WALKS_ASKS, "    asks: []\n"))
    problems = spec_problems(spec_file(tmp_path, text))
    assert problems == ["line 2: vocatives is empty",
                        "line 11: topic 'food': slot {snack} in 'yes. {snack} please.' has no pool (pools: treat)",
                        "line 18: topic 'walks' needs at least 2 asks (one is held out for testing), it has 0"]


@pytest.mark.parametrize("text, message", [
    pytest.param(REX.replace("openers: [hey, so]", "openers: [hey, so"),
                 r"is not valid YAML \(line \d+, column \d+\): ", id="not YAML"),
    pytest.param("- name: rex\n- topics: []\n", r"has 1 problem\(s\):\n  line 1: .*mapping.*, got a list", id="a list"),
    pytest.param("", r"has 1 problem\(s\):\n  line 1: .*mapping.*, got nothing", id="empty file"),
    pytest.param(b"\xff\xfe name: rex", "is not a text file", id="not text"),
])
def test_a_file_that_is_not_a_spec_gets_one_clear_error(tmp_path, text, message):
    path = tmp_path / "rex.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message) as error:
        load_character(path)
    assert type(error.value) is ValueError and str(error.value).startswith(str(path))


def test_an_unknown_name_or_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no character named 'nemo': name one of finn, mochi"):
        load_character("nemo")
    with pytest.raises(FileNotFoundError, match="no character spec at .*nothing.yaml"):
        load_character(tmp_path / "nothing.yaml")


def test_a_shipped_name_and_its_file_give_the_same_character(tmp_path):
    copy = tmp_path / "my_finn.yaml"
    shutil.copy(SPECS / "finn.yaml", copy)
    assert load_character("finn") == load_character(copy) == FINN
    assert load_character(SPECS / "mochi.yaml") == MOCHI


@pytest.mark.parametrize("character", [FINN, MOCHI], ids=lambda c: c.name)
def test_character_yaml_reads_back_equal(tmp_path, character):
    path = tmp_path / f"{character.name}.yaml"
    path.write_text(character_yaml(character))
    assert load_character(path) == character


def test_no_character_is_read_when_the_library_is_imported():
    "Finn's spec is read when a function needs a character and was given none, not when a module is imported."
    code = ("import pathlib\n"
            "read, original = [], pathlib.Path.read_text\n"
            "pathlib.Path.read_text = lambda self, *a, **k: read.append(self.name) or original(self, *a, **k)\n"
            "import tinyllm.data, tinyllm.train, tinyllm.generate, tinyllm.evaluate, tinyllm.export\n"
            "print(sorted(name for name in read if name.endswith('.yaml')))\n"
            "tinyllm.data.generate_conversations(1_000)\n"
            "print(sorted(name for name in read if name.endswith('.yaml')))")
    at_import, when_asked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout.splitlines()
    assert at_import == "[]" and when_asked == "['finn.yaml']"
