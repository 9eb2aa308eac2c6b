"""Chapter 8: the evaluation harness and `python -m tinyllm eval` (tinyllm/evaluate.py)."""
import copy
import dataclasses
import inspect
import json

import pytest
import torch
from datasets import DatasetDict

import tinyllm
from tinyllm.character import character_yaml, load_character
from tinyllm.data import generate_conversations, normalize, seen_in_training, unseen_questions, words
from tinyllm.evaluate import (OFF_TOPIC, SCOREBOARD, VARIANTS, Reply, deflects, distinct_n, evaluate,
                              evaluate_run, format_problems, fresh_prompts, held_out_loss, repeats_ngram,
                              reply_origins, sample_replies, score_replies, scoreboard, topic_vocabulary,
                              uses_vocabulary)
from tinyllm.generate import ChatModel, Sampling, generate_ids
from tinyllm.model import TinyLM

from command_line import run_tinyllm as run
from tiny_runs import tiny_run

FINN = load_character("finn")

TINY_MODEL = dict(n_layers=2, d_model=64, n_heads=4, d_ff=128, context_length=128, dropout=0.0)
FRACTIONS = ["format_ok", "persona", "topic_accuracy", "in_character", "copy_rate", "distinct_1", "distinct_2",
             "repetition", "robust_uppercase", "robust_typos", "robust_punctuation", "deflection"]


@pytest.fixture(scope="module")
def data():
    return generate_conversations(2_000, seed=0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, data):
    "A tiny model trained for a few seconds: it learns Finn's format, not yet his topics."
    return tiny_run(tmp_path_factory, data, TINY_MODEL, steps=300, warmup_steps=20, log_every=50,
                    data_source={"n": 2_000, "seed": 0})


@pytest.fixture(scope="module")
def trained(run_dir) -> ChatModel:
    return tinyllm.load(run_dir, device="cpu")


@pytest.fixture(scope="module")
def untrained(trained) -> ChatModel:
    torch.manual_seed(0)
    return ChatModel(TinyLM(trained.model.config), trained.tok)


def reply(text: str, topic: str = "greeting", ended: bool = True) -> Reply:
    return Reply("hi finn", topic, text, ended)


def test_words_match_whole_words_not_substrings():
    assert words("Hi, I'm thinking!") == ["hi", "i'm", "thinking"]
    vocabulary = {"greeting": {"hi", "hello"}}
    assert not uses_vocabulary(reply("i am thinking about this."), vocabulary)
    assert uses_vocabulary(reply("hi. i am thinking."), vocabulary)
    assert not uses_vocabulary(reply("hi there", topic="unknown"), vocabulary)


def test_topic_vocabulary_keeps_words_few_topics_use():
    rows = {"output": ["food is good", "water is good", "light is good", "the storm is loud"],
            "category": ["food", "water", "light", "weather"]}
    vocabulary = topic_vocabulary(rows, max_topics=1)
    assert vocabulary == {"food": {"food"}, "water": {"water"}, "light": {"light"}, "weather": {"the", "storm", "loud"}}
    assert topic_vocabulary(rows, max_topics=4)["food"] == {"food", "is", "good"}


@pytest.mark.parametrize("text, ended, problem", [
    ("food food food", False, "no end-of-turn token"),
    ("hello <|end|> there", True, "special-token text"),
    ("Hello there", True, "not lowercase"),
    ("i like food 🐟", True, "characters the character never uses"),
    ("hi.", True, "1 words"),
    (" ".join(["food"] * 41), True, "41 words"),
])
def test_format_problems_name_each_rule(text, ended, problem):
    problems = format_problems(reply(text, ended=ended), FINN)
    assert any(problem in p for p in problems), problems
    assert format_problems(reply("blub. hi. i am by the glass."), FINN) == []


def test_distinct_n_and_repetition():
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0
    assert repeats_ngram("i swim and i swim and rest") and not repeats_ngram("i swim and i rest and swim")


def test_score_replies_counts_persona_only_for_well_formed_replies():
    vocabulary = {"greeting": {"hello"}}
    replies = [reply("hello. i am here."), reply("hello hello hello", ended=False), reply("i am here.")]
    scores = score_replies(replies, vocabulary, lambda text: "greeting" if "hello" in text else "food",
                           training_replies={"i am here."}, character=FINN)
    assert scores["format_ok"] == pytest.approx(2 / 3)
    assert scores["persona"] == pytest.approx(1 / 3)          # the never-ending one does not count
    assert scores["topic_accuracy"] == pytest.approx(2 / 3)
    assert scores["in_character"] == pytest.approx(1 / 3)
    assert scores["copy_rate"] == pytest.approx(1 / 3)


def test_reply_origins_judge_each_reply_against_its_own_question():
    noted = {}
    data = generate_conversations(6_000, seed=0, question_slots=noted)
    train, test = data["train"].to_dict(), data["test"].to_dict()
    training_replies = set(train["output"])
    topics = {t.name: t for t in FINN.topics}
    # a test question that drew a slot value its reply repeats, in a reply that training lacks
    message, answer, topic, name, value = next(
        (m, a, t, name, value) for m, a, t in zip(test["input"], test["output"], test["category"])
        for name, value in noted[m, a, t].items() if f" {value}" in f" {a}" and a not in training_replies)
    pool = (FINN.pools | topics[topic].pools)[name.rstrip("0123456789")]
    other_value = next(v for v in pool if v != value and v not in answer)
    other_topic = next(r for r, t in zip(train["output"], train["category"]) if t != topic and r not in answer)
    replies = [Reply(train["input"][0], train["category"][0], train["output"][0], True)]   # a training exchange
    replies += [Reply(message, topic, text, True) for text in
                [answer, other_topic, answer.replace(value, other_value), "i am a very small fish."]]
    assert reply_origins(replies, training_replies, FINN, noted) == [
        "copied", "composed", "not for this question", "not for this question", "not for this question"]
    with pytest.raises(ValueError, match="no notes for the question"):
        reply_origins([Reply("a question nobody asked", "food", "food.", True)], training_replies, FINN, noted)


def test_deflection_needs_form_and_a_world_word():
    assert deflects(Reply("what is 17 times 23?", "", "i do not know numbers. i know water.", True), FINN)
    assert not deflects(Reply("what is 17 times 23?", "", "it is 391, i think.", True), FINN)
    assert not deflects(Reply("what is 17 times 23?", "", "water water water", False), FINN)
    assert FINN.world_words and len(OFF_TOPIC) >= 10


def test_variants_change_the_message_but_keep_it_readable():
    import random

    rng = random.Random(0)
    message = "what is the meaning of life?"
    changed = {name: change(message, rng) for name, change in VARIANTS.items()}
    assert changed["uppercase"] == message.upper()
    assert changed["typos"] != message and len(changed["typos"].split()) == len(message.split())
    assert changed["punctuation"].endswith("?!?!")


def test_fresh_questions_ask_about_every_topic_and_stay_apart_from_chapter_1s():
    prompts = fresh_prompts(FINN, seed=0)
    assert [topic for _, topic in prompts] == [t.name for t in FINN.topics for _ in range(3)]
    assert all(question and "{" not in question for question, _ in prompts), "every slot is filled in"
    assert prompts == fresh_prompts(FINN, seed=0)
    slotted = dataclasses.replace(FINN, fresh_questions={"money": ["do you know what {human_thing} is?"]})
    filled = {fresh_prompts(slotted, seed=seed)[0][0] for seed in range(10)}
    assert len(filled) > 1 and not any("{" in q for q in filled), "slots are filled, following the seed"
    asks = {normalize(ask) for t in FINN.topics for ask in t.asks}
    apart = [q for qs in FINN.fresh_questions.values() for q in qs if normalize(q) not in asks]
    assert len(apart) > 0.4 * len(prompts), "the fresh questions are turning into chapter 1's lists: keep them apart"


def test_sampled_replies_are_reproducible_and_know_if_they_ended(trained, untrained, data):
    prompts = unseen_questions(data, 5)
    first, again = sample_replies(trained, prompts, seed=3), sample_replies(trained, prompts, seed=3)
    assert first == again and len(first) == 5
    assert all(r.ended for r in first)                                    # the tiny run learnt to stop
    short = Sampling(max_new_tokens=16)
    assert not any(r.ended for r in sample_replies(untrained, prompts[:2], seed=0, sampling=short))


def test_batched_sampling_gives_each_prompt_the_reply_it_gets_alone(trained, data):
    "sample_replies batches prompts of equal length; each row must still be chapter 6's generate_ids with its seed."
    # float64, so that rounding in batched matrix products cannot move a sampled token across a top-p cut
    trained = ChatModel(copy.deepcopy(trained.model).double(), trained.tok)
    prompts = unseen_questions(data, 40)
    lengths = [len(trained.prompt_ids([{"role": "user", "content": m}], 48)) for m, _ in prompts]
    assert len(set(lengths)) < len(prompts), "no two prompts of one length: nothing was batched"
    batched = sample_replies(trained, prompts, seed=2, sampling=Sampling(max_new_tokens=48))
    for i, ((message, topic), reply) in enumerate(zip(prompts, batched)):
        prompt = trained.prompt_ids([{"role": "user", "content": message}], 48)
        alone = list(generate_ids(trained.model, prompt, Sampling(max_new_tokens=48), trained.end_id,
                                  trained.banned_ids, seed=2 * 1_000_003 + i))
        assert reply == Reply(message, topic, trained.tok.decode(alone), ended=len(alone) < 48)


def test_held_out_loss_splits_seen_and_unseen(trained, data):
    losses = held_out_loss(trained, data)
    assert set(losses) == {"test_loss", "test_loss_seen", "test_loss_unseen", "bits_per_byte"}
    seen = seen_in_training(data)
    for part, wanted in [("test_loss_seen", True), ("test_loss_unseen", False)]:
        rows = data["test"].select([i for i, s in enumerate(seen) if s == wanted])
        alone = held_out_loss(trained, DatasetDict(train=data["train"], test=rows))
        assert losses[part] == pytest.approx(alone["test_loss"], rel=1e-4)


def test_the_harness_tells_an_untrained_model_from_a_trained_one(trained, untrained, data):
    good = evaluate(trained, data, FINN, n_prompts=20, seeds=(0, 1))
    bad = evaluate(untrained, data, FINN, n_prompts=20, seeds=(0, 1))
    for scores in (good, bad):
        assert all(0 <= scores[k] <= 1 for k in FRACTIONS)
        assert all(scores[f"{k}_spread"] >= 0 for k in ["format_ok", "persona", "copy_rate"])
    assert good["test_loss"] < bad["test_loss"] - 1.0
    assert good["format_ok"] > bad["format_ok"] + 0.5
    assert good["deflection"] > bad["deflection"]


def test_evaluate_scores_fresh_questions_only_when_given(trained, data):
    plain = evaluate(trained, data, FINN, n_prompts=5, seeds=(0,))
    with_fresh = evaluate(trained, data, FINN, n_prompts=5, seeds=(0,), fresh=fresh_prompts(FINN)[:6])
    assert "fresh_in_character" not in plain and 0 <= with_fresh["fresh_in_character"] <= 1
    assert with_fresh["in_character"] == plain["in_character"], "the fresh questions leave the other scores alone"


def test_fresh_questions_the_data_contains_are_not_scored_as_fresh(trained, data):
    "A fresh question that happens to be a training question tests memory: the fresh row leaves it out."
    train = data["train"].to_dict()
    seen = [(train["input"][i].upper(), train["category"][i]) for i in range(3)]   # the same words, another case
    assert "fresh_in_character" not in evaluate(trained, data, FINN, n_prompts=5, seeds=(0,), fresh=seen)
    mixed = evaluate(trained, data, FINN, n_prompts=5, seeds=(0,), fresh=seen + fresh_prompts(FINN)[:6])
    alone = evaluate(trained, data, FINN, n_prompts=5, seeds=(0,), fresh=fresh_prompts(FINN)[:6])
    assert mixed["fresh_in_character"] == alone["fresh_in_character"]


def test_evaluate_run_judges_a_run_by_its_own_character(run_dir, data, tmp_path, monkeypatch):
    "evaluate_run reads the run's character.yaml: its rules judge the replies, and only its fresh questions are asked."
    import shutil

    import tinyllm.evaluate as evaluate_module

    other = dataclasses.replace(FINN, world_words=("gravel",), fresh_questions={"food": ["snack time, {food}?"]})
    run = shutil.copytree(run_dir, tmp_path / "run")
    (run / "character.yaml").write_text(character_yaml(other))
    calls = []

    def record(*args, **kwargs):
        calls.append(inspect.signature(evaluate).bind(*args, **kwargs).arguments)
        return {"test_loss": 1.0}
    monkeypatch.setattr(evaluate_module, "evaluate", record)
    assert evaluate_run(run, n_prompts=7, seeds=(4,), device="cpu") == {"test_loss": 1.0}
    (call,) = calls
    assert call["character"] == other and call["fresh"] == fresh_prompts(other)
    assert (call["n_prompts"], call["seeds"]) == (7, (4,)) and isinstance(call["chat"], ChatModel)
    assert call["data"]["train"].to_dict() == data["train"].to_dict()     # the run's data, rebuilt from its source
    (run / "character.yaml").unlink()                                     # a run from before runs kept one: Finn
    evaluate_run(run, n_prompts=7, seeds=(4,), device="cpu")
    assert calls[1]["character"] == FINN and calls[1]["fresh"] == fresh_prompts(FINN)


def test_evaluate_rejects_no_seeds(trained, data):
    with pytest.raises(ValueError, match="seed"):
        evaluate(trained, data, FINN, seeds=())


def test_scoreboard_has_a_row_per_measure_taken_and_a_column_per_model():
    table = scoreboard({"a": {"test_loss": 1.0, "format_ok": 0.5, "format_ok_spread": 0.01}, "b": {"test_loss": 2.0}})
    lines = table.splitlines()
    assert len(lines) == 3 and lines[0].split()[-2:] == ["a", "b"], "a row per measure some model has"
    assert "0.500 ± 0.010" in table and lines[2].split()[-1] == "-", "b has no format score"
    assert len(scoreboard({"all": {key: 0.5 for key, _, _ in SCOREBOARD}}).splitlines()) == len(SCOREBOARD) + 1


@pytest.mark.slow
def test_eval_cli_prints_json_with_the_contracts_keys(run_dir):
    result = run("eval", str(run_dir), "--json", "--prompts", "10", "--seeds", "2", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["test_loss"] > 0
    assert all(0 <= scores[k] <= 1 for k in ["format_ok", "persona", "topic_accuracy", "copy_rate",
                                             "fresh_in_character"]), "a run on Finn's topics gets the fresh questions"


@pytest.mark.slow
def test_eval_cli_prints_the_scoreboard(run_dir):
    result = run("eval", str(run_dir), "--prompts", "5", "--seeds", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].split()[:2] == ["measure", "better"] and "in character" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["does/not/exist"], "does/not/exist"),
    (["RUN", "--prompts", "0"], "positive whole number"),
    (["RUN", "--seeds", "two"], "positive whole number"),
])
def test_eval_cli_bad_input_gets_one_line(args, message, run_dir):
    args = [str(run_dir) if a == "RUN" else a for a in args]
    result = run("eval", *args)
    assert result.returncode in (1, 2) and message in result.stderr
    assert "Traceback" not in result.stderr
