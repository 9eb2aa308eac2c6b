"""Chapter 1: Finn's conversation data (tinyllm/data.py)."""
import dataclasses
import json
import random
import re
from collections import Counter
from dataclasses import replace

import pytest
from datasets import Dataset, DatasetDict
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.character import character_problems, character_yaml, load_character
from tinyllm.chat_format import ASSISTANT, END, USER, chat_text, format_chat
from tinyllm.data import (EARLIER_EXCHANGES, MIN_CONVERSATIONS, TYPO_RATE, Slots, atomic_folder, conversation,
                          dressed_forms, generate_conversations, held_out_asks, lint, load_conversations,
                          misspell, normalize, reply, reply_odds, reply_problems, save_conversations,
                          seen_in_training, training_questions, unseen_questions, words)

FINN = load_character("finn")

# The list of subjects Finn must be able to talk about, mapped to topic names.
REQUIRED_TOPICS = """greeting goodbye thanks feelings hot_water cold_water food light water_quality tank
loud_noise night loneliness bubbles glass reflection breathing swimming colors taste plants filter algae
snails scared excited bored curious happy tired outside_world cats rain seasons music visitors children
meaning_of_life time memory dreams size future past name weather sleep friends jokes fear love age smart
health singing tv human_things money phones politics math""".split()


@pytest.fixture(scope="module")
def data():
    return generate_conversations()  # the default: 60,000 conversations, seed 0


@pytest.fixture(scope="module")
def rows(data):
    return {split: ds.to_dict() for split, ds in data.items()}


def pairs(split_rows):
    return set(zip(split_rows["input"], split_rows["output"]))


# --- size, shape, determinism ---------------------------------------------------------

def test_sizes_and_columns(data):
    assert list(data) == ["train", "validation", "test"]
    assert sum(len(ds) for ds in data.values()) == 60_000
    for ds in data.values():
        assert ds.column_names == ["input", "output", "category", "history"]
    assert 0.85 < len(data["train"]) / 60_000 < 0.92
    assert 0.04 < len(data["validation"]) / 60_000 < 0.06
    assert 0.04 < len(data["test"]) / 60_000 < 0.06


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (generate_conversations(2_000, seed=seed) for seed in (7, 7, 8))
    assert all(a[s].to_dict() == b[s].to_dict() for s in a)
    assert a["train"].to_dict() != c["train"].to_dict()


def test_finn_data_is_pinned(data):
    """A regression pin, not a specification: the chapters' stored outputs (and the runs trained on them) come from
    exactly these 60,000 conversations. The hash changes only when Finn's data is changed on purpose (finn.yaml or
    the generator); then re-execute the chapters and update it here."""
    from tinyllm.runs import data_fingerprint   # chapter 5's, which the reference run records

    assert data_fingerprint(data) == "41c8092fc3e8d2c07d0a0e90c5036bd2507279f7"


@pytest.mark.parametrize("bad", [0, -5, MIN_CONVERSATIONS - 1, 2.5, "100", True, None])
def test_bad_n_is_refused(bad):
    with pytest.raises(ValueError, match="whole number"):
        generate_conversations(bad)


# --- the persona ------------------------------------------------------------------------

def test_at_least_sixty_topics_including_the_required_ones(rows):
    names = {t.name for t in FINN.topics}
    assert len(names) == len(FINN.topics) >= 60
    assert not set(REQUIRED_TOPICS) - names
    assert set(rows["train"]["category"]) == names


def test_topics_are_balanced(rows):
    counts = Counter(c for split in rows.values() for c in split["category"])
    assert max(counts.values()) - min(counts.values()) <= 1


def test_the_meaning_of_life_is_food(rows):
    answers = [a for split in rows.values() for a, c in zip(split["output"], split["category"])
               if c == "meaning_of_life"]
    assert len(answers) > 500
    assert all(re.search(r"\bfood\b", a) for a in answers)


@pytest.mark.parametrize("topic", ["money", "phones", "politics", "math", "technology", "human_things"])
def test_human_things_are_not_understood(rows, topic):
    core = [t for t in FINN.topics if t.name == topic][0].replies
    assert any("do not" in r or "human thing" in r or "cannot" in r for r in core)
    answers = [a for a, c in zip(rows["train"]["output"], rows["train"]["category"]) if c == topic]
    fish_terms = r"\b(food|flakes?|eat|water|fish|fins?|bubbles?|gravel|rock|tank|swim|glass|plant|nets?)\b"
    not_in_fish_terms = [a for a in answers if not re.search(fish_terms, a)]
    assert answers and not not_in_fish_terms, not_in_fish_terms[:3]


def test_replies_are_short_lowercase_fish_talk(rows):
    answers = [a for split in rows.values() for a in split["output"]]
    assert all(a == a.lower() for a in answers)
    lengths = [len(a.split()) for a in answers]
    assert min(lengths) >= FINN.min_reply_words and max(lengths) <= FINN.max_reply_words
    assert sum(lengths) / len(lengths) < 20


# --- variety on both sides ---------------------------------------------------------------

def test_uniqueness_floors(rows):
    inputs = [m for split in rows.values() for m in split["input"]]
    outputs = [a for split in rows.values() for a in split["output"]]
    assert len(set(inputs)) >= 3_000
    assert len(set(outputs)) / len(outputs) >= 0.40


def test_user_messages_come_in_many_shapes(rows):
    inputs = rows["train"]["input"]
    share = lambda test: sum(map(test, inputs)) / len(inputs)  # noqa: E731
    assert 0.03 < share(lambda m: m.isupper()) < 0.2                      # "HELLO FINN!!"
    assert 0.15 < share(lambda m: m[:1].isupper() and not m.isupper()) < 0.5
    assert 0.15 < share(lambda m: "finn" in m.lower()) < 0.6
    assert share(lambda m: m.endswith("??")) > 0.05
    assert share(lambda m: not m.endswith(("?", "!", "."))) > 0.1
    templates = [a for t in FINN.topics for a in t.asks + t.keywords] + FINN.vocatives + FINN.openers
    templates += FINN.generic_asks
    templates += [w for pool in FINN.pools.values() for w in pool]
    templates += [w for t in FINN.topics for pool in t.pools.values() for w in pool]
    known = {w for text in templates for w in words(text)}
    typo_share = share(lambda m: any(w not in known for w in words(m)))
    assert 0.5 * TYPO_RATE < typo_share < 1.5 * TYPO_RATE                      # "are you hugnry?"


@given(st.text(alphabet="abcdefgh ", min_size=1, max_size=40), st.integers(0, 10_000))
def test_misspell_changes_at_most_one_word_by_one_letter(text, seed):
    import random
    out = misspell(random.Random(seed), text)
    before, after = text.split(" "), out.split(" ")
    assert len(before) == len(after)
    changed = [(b, a) for b, a in zip(before, after) if b != a]
    assert len(changed) <= 1
    for b, a in changed:
        assert len(b) >= 4, "only a longer word gets a typo"
        assert one_typo_apart(b, a), (b, a)


def one_typo_apart(word: str, typed: str) -> bool:
    "Is `typed` `word` with two neighbouring letters swapped, one letter dropped or one letter doubled?"
    if len(typed) == len(word):
        diff = [i for i, (x, y) in enumerate(zip(word, typed)) if x != y]
        return len(diff) == 2 and diff[1] == diff[0] + 1 and typed[diff[0]] == word[diff[1]] \
            and typed[diff[1]] == word[diff[0]]
    if len(typed) == len(word) - 1:
        return any(word[:i] + word[i + 1:] == typed for i in range(len(word)))
    if len(typed) == len(word) + 1:
        return any(typed[:i] + typed[i + 1:] == word and typed[i] in typed[max(0, i - 1):i] + typed[i + 1:i + 2]
                   for i in range(len(typed)))
    return False


def test_one_typo_apart_tells_typos_from_other_changes():
    "The judge of the test above, on hand-made cases."
    assert all(one_typo_apart("hungry", typed) for typed in ["hugnry", "hngry", "hunngry", "hungyr"])
    assert not one_typo_apart("hungry", "hungrx")      # a letter replaced
    assert not one_typo_apart("hungry", "yungrh")      # letters swapped far apart
    assert not one_typo_apart("hungry", "hunxgry")     # a letter added that doubles nothing
    assert not one_typo_apart("hungry", "hury")        # two letters dropped


def test_slots_share_values_within_a_conversation():
    import random
    slots = Slots(random.Random(0), FINN.pools)
    first = "do you like {food}?".format_map(slots)
    again = "{food} it is.".format_map(slots)
    assert first[len("do you like "):-1] == again[:-len(" it is.")]
    for seed in range(50):
        slots = Slots(random.Random(seed), FINN.pools)
        assert slots["food"] != slots["food2"]


def test_question_and_answer_talk_about_the_same_food(rows):
    topic = next(t for t in FINN.topics if t.name == "food")
    # the replies that name a {food}, as patterns that catch it: "ooh, {food}. that is my favorite. ..."
    patterns = [re.escape(r).replace(r"\{food\}", "(?P<food>[a-z ]+)").replace(r"\{food2\}", "[a-z ]+")
                for r in topic.replies if "{food}" in r]
    # the topic's own words hold foods that are no {food} ("tetra flakes", "frozen brine shrimp")
    own_words = sorted((w for pool in topic.pools.values() for w in pool), key=len, reverse=True)
    train, checked = rows["train"], 0
    for message, answer, category in zip(train["input"], train["output"], train["category"]):
        replied = next((m["food"] for p in patterns if (m := re.search(p, answer))), None)
        if category != "food" or not replied:
            continue
        said = message.lower()
        for word in own_words:
            said = said.replace(word, " ")
        if named := [f for f in FINN.pools["food"] if re.search(rf"\b{f}\b", said)]:
            assert replied in named, (message, answer)
            checked += 1
    assert checked >= 20   # the 60,000 conversations hold about 30 such rows


def test_question_slots_note_what_each_question_drew_without_changing_the_data(data):
    noted = {}
    again = generate_conversations(question_slots=noted)
    assert all(again[split][:] == data[split][:] for split in data), "noting the slots changes no conversation"
    for split in data.values():
        assert all(row in noted for row in zip(split["input"], split["output"], split["category"])), \
            "every exchange is noted"
    shown = [(m, s) for (m, _, _), s in noted.items() if s]
    assert len(shown) > 1000 and sum(all(v in m.lower() for v in s.values()) for m, s in shown) > 0.8 * len(shown), \
        "the values a question drew show in it (but for the odd typo)"


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([t for t in FINN.topics if t.name in {"food", "colors", "feelings", "meaning_of_life", "tank"}]),
       st.integers(0, 2**32 - 1))
def test_whatever_a_question_drew_the_reply_the_generator_writes_has_its_odds(topic, seed):
    rng = random.Random(seed)
    slots = Slots(rng, FINN.pools | topic.pools)
    rng.choice(topic.asks).format_map(slots)   # the question draws its slots first, as in `conversation`
    odds = reply_odds(topic, FINN, dict(slots))
    assert abs(sum(odds.values()) - 1) < 1e-9 and min(odds.values()) > 0
    assert reply(rng, topic, FINN, slots) in odds


def test_reply_odds_keep_the_questions_slot_values():
    food = next(t for t in FINN.topics if t.name == "food")
    odds = reply_odds(food, FINN, {"food": "flakes"})
    assert "ooh, flakes. that is my favorite. please drop it in." in odds
    assert not [t for t in odds if t.startswith("ooh, ") and not t.startswith("ooh, flakes.")], "the question's food"
    assert not [t for t in odds if "i like flakes and flakes." in t], "{food2} avoids a value already drawn"
    rng, n = random.Random(1), 40_000
    counts = Counter()
    for _ in range(n):
        slots = Slots(rng, FINN.pools | food.pools)
        slots["food"] = "flakes"   # as if the question had drawn it
        counts[reply(rng, food, FINN, slots)] += 1
    assert set(counts) <= set(odds)
    for text, p in sorted(odds.items(), key=lambda item: -item[1])[:20]:   # the likeliest, within 5 standard errors
        assert abs(counts[text] / n - p) < 5 * (p * (1 - p) / n) ** 0.5, (text, counts[text] / n, p)


def test_reply_odds_match_how_often_the_generator_writes_each_reply():
    topic = next(t for t in FINN.topics if t.name == "meaning_of_life")   # few replies: counts come out sharp
    odds, rng, n = reply_odds(topic, FINN), random.Random(0), 60_000
    counts = Counter(reply(rng, topic, FINN, Slots(rng, FINN.pools | topic.pools)) for _ in range(n))
    assert set(counts) <= set(odds), "the generator writes only replies that have odds"
    for text, p in sorted(odds.items(), key=lambda item: -item[1])[:20]:   # the likeliest, within 5 standard errors
        assert abs(counts[text] / n - p) < 5 * (p * (1 - p) / n) ** 0.5, (text, counts[text] / n, p)


# --- leak-free splits ---------------------------------------------------------------------

def test_no_conversation_in_two_splits(rows):
    train, validation, test = (pairs(rows[s]) for s in ("train", "validation", "test"))
    assert not train & validation and not train & test and not validation & test


def test_test_split_holds_wordings_never_seen_in_training(data, rows):
    seen = seen_in_training(data)
    assert 0.3 < seen.count(False) / len(seen) < 0.9     # both kinds are there
    train = rows["train"]
    # what training asks: the last questions, and the user's turns before them (even places in the history)
    asked = {normalize(m) for m in train["input"]} | {normalize(m) for h in train["history"] for m in h[::2]}
    assert seen == [normalize(m) in asked for m in rows["test"]["input"]]


def test_unseen_questions_are_the_test_questions_training_never_saw(data, rows):
    pairs = unseen_questions(data)
    train_questions = {normalize(m) for m in rows["train"]["input"]}
    assert len(pairs) == seen_in_training(data).count(False) > 0
    assert all(normalize(question) not in train_questions for question, _ in pairs)
    assert set(pairs) <= set(zip(rows["test"]["input"], rows["test"]["category"]))
    assert unseen_questions(data, 5) == pairs[:5]


def test_held_out_wordings_never_reach_training(rows):
    held_out = held_out_asks(FINN, seed=0)
    train_questions = {normalize(m) for m in rows["train"]["input"]}
    for name, ask in held_out.items():
        if "{" not in ask:   # a wording without slots must not occur, alone or with just a name or an opener
            forms = dressed_forms(ask, FINN)
            assert not forms & train_questions, (name, ask, forms & train_questions)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_any_seed_gives_clean_data(seed):
    assert lint(generate_conversations(MIN_CONVERSATIONS * 2, seed=seed), FINN) == []


# --- the linter -----------------------------------------------------------------------------

def test_linter_passes_generated_data(data):
    assert lint(data, FINN) == []


def broken(**columns) -> DatasetDict:
    base = generate_conversations(MIN_CONVERSATIONS, seed=1)
    rows = base["train"].to_dict()
    for column, value in columns.items():
        rows[column][0] = value
    return DatasetDict(train=Dataset.from_dict(rows), validation=base["validation"], test=base["test"])


@pytest.mark.parametrize("columns, complaint", [
    ({"output": "yes. {food} please."}, "template residue"),
    ({"input": "do you like {food}?"}, "template residue"),
    ({"output": "Yes. I am Finn."}, "not lowercase"),
    ({"output": "yes 🐟"}, "characters the character never uses"),
    ({"output": "food"}, "1 words, not 2-40"),
    ({"output": " ".join(["food"] * 41)}, "41 words, not 2-40"),
    ({"input": "   "}, "empty user message"),
    ({"category": "fod"}, "unknown topic 'fod'"),
])
def test_linter_catches_each_rule(columns, complaint):
    problems = lint(broken(**columns), FINN)
    assert any(p.startswith("train[0]: ") and complaint in p for p in problems), problems


def test_reply_problems_name_each_rule():
    assert reply_problems("blub. i am by the glass.", FINN) == []
    assert reply_problems("Hello there", FINN) == ["not lowercase"]
    assert reply_problems("i like food 🐟", FINN) == ["characters the character never uses"]
    assert reply_problems("hi.", FINN) == ["1 words, not 2-40"]
    assert reply_problems(" ".join(["food"] * 41), FINN) == ["41 words, not 2-40"]
    assert reply_problems("Hi.", FINN) == ["not lowercase", "1 words, not 2-40"]
    short = dataclasses.replace(FINN, min_reply_words=1, max_reply_words=3)
    assert reply_problems("hi.", short) == [] and reply_problems("i am a fish.", short) == ["4 words, not 1-3"]


def test_words_are_lowercase_letters_digits_and_apostrophes():
    assert words("HEY Finn, hungry?? it's 3 o'clock!") == ["hey", "finn", "hungry", "it's", "3", "o'clock"]
    assert words("...") == [] and normalize("HEY  Finn, hungry??") == "hey finn hungry"


def test_linter_catches_leaks_and_missing_topics():
    base = generate_conversations(MIN_CONVERSATIONS, seed=1)
    leaked = DatasetDict(train=base["train"], validation=base["validation"], test=base["train"].select([5]))
    assert any("also in train" in p for p in lint(leaked, FINN))
    one_topic = base["train"].filter(lambda r: r["category"] == "food")
    missing = lint(DatasetDict(train=one_topic), FINN)
    assert sum("has no conversations" in p for p in missing) == len(FINN.topics) - 1


# --- the chat format ---------------------------------------------------------------------

def test_chat_format():
    row = {"input": "are you hungry?", "output": "yes."}
    assert chat_text(row) == f"{USER}are you hungry?{END}{ASSISTANT}yes.{END}"
    prompt = format_chat([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    assert prompt == f"{USER}hi{END}{ASSISTANT}"
    asked = format_chat([{"role": "user", "content": row["input"]}], add_generation_prompt=True)
    assert chat_text(row) == asked + row["output"] + END   # training text: the prompt chat sends, then the reply
    with pytest.raises(ValueError, match="unknown role"):
        format_chat([{"role": "system", "content": "x"}])


# --- saving and loading ------------------------------------------------------------------

def test_an_atomic_folder_replaces_the_old_one_only_when_complete(tmp_path):
    out = tmp_path / "run"
    with atomic_folder(out) as partial:
        (partial / "a.txt").write_text("first")
        assert not out.exists()                          # nothing there until the block ends
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out) as partial:
            (partial / "a.txt").write_text("half")
            raise KeyboardInterrupt                      # an interrupted write ...
    assert (out / "a.txt").read_text() == "first"        # ... leaves the old folder as it was
    with atomic_folder(out) as partial:
        (partial / "b.txt").write_text("second")
    assert [p.name for p in out.iterdir()] == ["b.txt"]  # a complete write replaces it, old files and all
    assert [p.name for p in tmp_path.iterdir()] == ["run"]   # no .partial or .old left behind


def test_save_and_load_round_trip(tmp_path):
    data = generate_conversations(MIN_CONVERSATIONS, seed=4)
    out = save_conversations(data, tmp_path / "finn", progress=False)
    assert {p.name for p in out.iterdir()} >= {"dataset_dict.json", "train.jsonl", "validation.jsonl", "test.jsonl"}
    again = load_conversations(out)
    assert all(again[s].to_dict() == data[s].to_dict() for s in data)
    lines = (out / "test.jsonl").read_text().splitlines()
    assert len(lines) == len(data["test"])


def test_save_replaces_an_old_data_set_but_never_other_files(tmp_path):
    out = tmp_path / "finn"
    save_conversations(generate_conversations(MIN_CONVERSATIONS, seed=1), out, progress=False)
    save_conversations(generate_conversations(MIN_CONVERSATIONS, seed=2), out, progress=False)
    expected = generate_conversations(MIN_CONVERSATIONS, seed=2)["train"].to_dict()
    assert load_conversations(out)["train"].to_dict() == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finn"]   # no .partial or .old left behind
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.txt").write_text("do not lose me")
    with pytest.raises(FileExistsError, match="not a data set directory"):
        save_conversations(generate_conversations(MIN_CONVERSATIONS), precious, progress=False)
    assert (precious / "chapter1.txt").read_text() == "do not lose me"


def original_format_rows(n=30):
    "Rows in the format of the original 60K fish data set: input, output, category (+ extras)."
    return [{"input": f"question {i}?", "output": f"answer {i}.", "category": "food", "id": i} for i in range(n)]


def test_load_a_local_copy_in_the_original_format(tmp_path):
    folder = tmp_path / "fish-60k"
    folder.mkdir()
    for split, rows in [("train", original_format_rows(30)), ("test", original_format_rows(5))]:
        with open(folder / f"{split}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    data = load_conversations(folder)
    assert set(data) == {"train", "test"}
    assert data["train"].column_names == ["input", "output", "category"]   # extra columns dropped
    assert data["train"][3] == {"input": "question 3?", "output": "answer 3.", "category": "food"}


def test_load_hub_style_parquet_and_single_files(tmp_path):
    (tmp_path / "hub" / "data").mkdir(parents=True)
    Dataset.from_list(original_format_rows(20)).to_parquet(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet")
    Dataset.from_list(original_format_rows(4)).to_parquet(tmp_path / "hub" / "data" / "test-00000-of-00001.parquet")
    hub = load_conversations(tmp_path / "hub")
    assert (len(hub["train"]), len(hub["test"])) == (20, 4)
    Dataset.from_list(original_format_rows(7)).to_csv(tmp_path / "one.csv")
    assert len(load_conversations(tmp_path / "one.csv")["train"]) == 7


def test_load_errors_are_clear(tmp_path):
    Dataset.from_list([{"question": "hi", "answer": "hello"}]).to_json(tmp_path / "wrong.jsonl")
    with pytest.raises(ValueError, match=r"no column\(s\) \['input', 'output', 'category'\]"):
        load_conversations(tmp_path / "wrong.jsonl")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_conversations(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no data set at"):
        load_conversations(tmp_path / "missing")


@pytest.mark.parametrize("character", ["finn", "mochi"])
def test_every_wording_belongs_to_one_topic(character):
    "A wording listed under two topics would teach two answers to one question, and leak held-out wordings."
    from tinyllm.characters import MOCHI

    spec = {"finn": FINN, "mochi": MOCHI}[character]
    owners = Counter(ask for t in spec.topics for ask in set(map(normalize, t.asks)))
    assert [ask for ask, n in owners.items() if n > 1] == []
    for t in spec.topics:
        assert len(set(map(normalize, t.asks))) == len(t.asks), f"{t.name} lists a wording twice"


# --- conversations of several exchanges, and the topics' own words -----------------------

def test_conversations_have_one_to_three_exchanges_in_the_planned_shares(data):
    histories = data["train"]["history"]
    counts = Counter(len(h) for h in histories)
    assert set(counts) == {0, 2, 4}                     # whole exchanges only: 0, 1 or 2 before the last
    for earlier, share in EARLIER_EXCHANGES.items():
        assert abs(counts[2 * earlier] / len(histories) - share) < 0.02


def test_earlier_exchanges_are_real_exchanges_and_never_a_held_out_wording(data):
    held_out = set().union(*(dressed_forms(ask, FINN) for ask in held_out_asks(FINN, 0).values()))
    replies = {r for split in data.values() for r in split["output"]}
    rows = data["train"].to_dict()
    for history in rows["history"][:3_000]:
        for question, answer in zip(history[::2], history[1::2]):
            assert normalize(question) not in held_out
            assert not reply_problems(answer, FINN) and "{" not in question + answer
    assert sum(a in replies for h in rows["history"][:3_000] for a in h[1::2]) > 0   # drawn like any reply


def test_chat_text_lays_out_every_exchange_in_order():
    row = {"input": "and you?", "output": "i am a fish.", "category": "feelings",
           "history": ["hi", "hello. i was swimming.", "are you hungry?", "yes."]}
    assert chat_text(row) == ("<|user|>hi<|end|><|assistant|>hello. i was swimming.<|end|>"
                              "<|user|>are you hungry?<|end|><|assistant|>yes.<|end|>"
                              "<|user|>and you?<|end|><|assistant|>i am a fish.<|end|>")
    assert chat_text({k: v for k, v in row.items() if k != "history"}).startswith("<|user|>and you?")


def test_topic_pools_fill_the_topics_asks_and_only_theirs():
    hot = next(t for t in FINN.topics if t.name == "hot_water")
    assert hot.pools, "Finn's topics carry their everyday words"
    pool, words_ = next(iter(hot.pools.items()))
    ask = next(a for a in hot.asks if f"{{{pool}}}" in a)
    filled = {conversation(random.Random(i), hot, ask, FINN)["input"].lower() for i in range(60)}
    assert sum(any(w in text for w in words_) for text in filled) >= 50   # dressing may add a typo
    other = next(t for t in FINN.topics if t.name == "greeting")
    with pytest.raises(KeyError):
        conversation(random.Random(0), other, ask, FINN)                  # another topic's pool is not in scope


def test_a_topic_pool_that_shadows_a_character_pool_or_holds_odd_text_is_reported():
    hot = next(t for t in FINN.topics if t.name == "hot_water")
    bad = replace(FINN, topics=[replace(hot, pools={"food": ["soup"], "hot": ["Boiling", ""]})] + FINN.topics[1:])
    problems = "\n".join(character_problems(bad))
    assert "pool 'food' is also a pool of the whole character" in problems
    assert "pool 'hot' is empty or has an empty word" in problems and "'Boiling' is not plain lowercase" in problems


def test_a_spec_with_topic_pools_survives_the_yaml_round_trip(tmp_path):
    path = tmp_path / "finn.yaml"
    path.write_text(character_yaml(FINN))
    assert load_character(path) == FINN


def test_single_exchanges_only_when_asked():
    data = generate_conversations(2_000, seed=1, earlier_exchanges={0: 1.0})
    assert all(history == [] for split in data.values() for history in split["history"])


def test_a_history_column_that_is_not_a_list_of_texts_is_refused(tmp_path):
    path = tmp_path / "flat.csv"
    Dataset.from_dict({"input": ["hi"], "output": ["hello."], "category": ["greeting"],
                       "history": ["hi hello."]}).to_csv(path)
    with pytest.raises(ValueError, match="history column that is not a list of texts"):
        load_conversations(path)


def test_training_questions_hold_earlier_questions_too(data):
    asked = training_questions(data)
    earlier = data["train"][0:50]["history"]
    assert all(normalize(q) in asked for history in earlier for q in history[::2])
    assert normalize(data["train"][0]["input"]) in asked
