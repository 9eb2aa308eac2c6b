"""Chapter 9 and chapter 1's spec checks: a character is data, validated before it is generated."""
import dataclasses

import pytest

from tinyllm.characters import MOCHI
from tinyllm.data import FINN, SLOT, Character, character_problems, check_character, generate, lint, topic
from tinyllm.evaluate import evaluate
from tinyllm.generate import ChatModel

from tiny_runs import tiny_trainer


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
    (dict(topics=MOCHI.topics + [topic("yarn", asks="do you like yarn?", replies="yes.")]), "at least 2 asks"),
    (dict(topics=MOCHI.topics + [topic("yarn", asks="yarn? | more yarn?", replies="")]), "'yarn' has no replies"),
])
def test_a_broken_spec_gets_a_clear_error_before_any_data(change, message):
    broken = dataclasses.replace(MOCHI, **change)
    with pytest.raises(ValueError, match="problem") as error:
        generate(n=1_000, character=broken)
    assert message in str(error.value)
    assert "Traceback" not in str(error.value) and "KeyError" not in str(error.value)


def test_every_problem_is_listed_at_once():
    broken = Character(name="Rex", topics=[topic("bones", asks="bones?", replies="{bone}.")], pools={"treat": []},
                       vocatives=["rex"], openers=["hey"], interjections=[], closers=[],
                       generic_asks=["{keyword}?"])
    problems = character_problems(broken)
    assert len(problems) == 5
    with pytest.raises(ValueError) as error:
        check_character(broken)
    assert all(p in str(error.value) for p in problems)


def test_slot_pattern_maps_numbered_slots_to_their_pool():
    assert SLOT.findall("{food} and {food2}, {spot}") == ["food", "food", "spot"]


def test_mochi_generates_lints_and_trains_on_a_tiny_budget():
    data = generate(n=2_000, seed=0, character=MOCHI)
    assert lint(data, MOCHI) == []
    assert set(data["train"]["category"]) == {t.name for t in MOCHI.topics}
    shape = dict(n_layers=2, d_model=64, n_heads=4, d_ff=128, context_length=128, dropout=0.0)
    trainer = tiny_trainer(data, shape, steps=200, warmup_steps=20, log_every=50)
    first = trainer.evaluate(trainer.valid_examples)["loss"]
    trainer.fit(progress=False)
    assert trainer.evaluate(trainer.valid_examples)["loss"] < first - 1.0
    scores = evaluate(ChatModel(trainer.model, trainer.tok), data, MOCHI, n_prompts=10, seeds=(0,))
    assert scores["format_ok"] > 0.5   # the voice comes first (chapter 8)


def test_generate_explains_a_topic_whose_every_wording_spells_out_the_held_out_one():
    "'hi, mochi' is 'hi' with a name: if 'hi' is held out, training has nothing left to ask about the topic."
    spec = dataclasses.replace(MOCHI, topics=MOCHI.topics + [topic("hello", asks="hi | hi, mochi", replies="mrrp.")])
    errors = []
    for seed in range(10):
        try:
            generate(1_000, seed, spec)
        except ValueError as error:
            errors.append(str(error))
    assert errors and all("hello" in e and "held-out" in e for e in errors)
