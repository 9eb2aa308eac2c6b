"""Chapter 2: the byte-level BPE tokenizer (tinyllm/tokenizer.py)."""
import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.chat_format import ASSISTANT, END, USER, chat_messages, chat_text, format_chat
from tinyllm.data import generate_conversations
from tinyllm.tokenizer import (PATTERN, SPECIAL_TOKENS, VOCAB_SIZE, Tokenizer, chunks, count_pretokens,
                               pretokenize, train_merges, train_naive, train_tokenizer)


@pytest.fixture(scope="module")
def data():
    return generate_conversations()


@pytest.fixture(scope="module")
def tok(data):
    return train_tokenizer(data)


@pytest.fixture(scope="module")
def small():
    texts = generate_conversations(2_000, seed=1)["train"].to_dict()
    return Tokenizer.train(texts["input"] + texts["output"], 600)


# Any Unicode text: letters in many scripts, uppercase, emoji, whitespace runs, control characters.
any_text = st.text(st.characters(codec="utf-8"), max_size=200) | st.text(
    st.sampled_from(list("aA é🐟\n\t\r  .,?!'s0123<|>end") + ["\x00", "\x1b", "\u200b"]), max_size=80)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_decode_inverts_encode(small, text):
    assert small.decode(small.encode(text)) == text


@settings(max_examples=200, deadline=None)
@given(any_text)
def test_encode_is_deterministic_and_independent_of_the_cache(small, text):
    fresh = Tokenizer(small.merges)
    assert small.encode(text) == fresh.encode(text) == fresh.encode(text)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_chunking_never_changes_pretokens(text):
    assert [w for chunk in chunks(text) for w in pretokenize(chunk)] == pretokenize(text)
    assert "".join(pretokenize(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SPECIAL_TOKENS + ["hi", " ", "<|", "|>", "end", "user"]), max_size=12).map("".join))
def test_typed_markers_never_become_special_tokens(small, text):
    ids = small.encode(text)
    assert not set(ids) & set(small.special_tokens.values())
    assert small.decode(ids) == text


def test_fast_trainer_learns_the_naive_merges():
    texts = generate_conversations(1_000, seed=2)["train"].to_dict()["output"][:800]
    assert train_merges(count_pretokens(texts), 60, min_frequency=1) == train_naive(texts, 60)


def test_counting_by_chunks_equals_counting_every_text(data):
    texts = data["validation"].to_dict()["input"]
    direct = {}
    for text in texts:
        for word in pretokenize(text):
            direct[word] = direct.get(word, 0) + 1
    assert count_pretokens(texts) == direct


def test_training_stops_when_no_pair_is_worth_merging():
    texts = ["ab ab ab", "cd"]
    tok = Tokenizer.train(texts, vocab_size=10_000, min_frequency=2)
    assert [tok.vocab[256 + k] for k in range(len(tok.merges))] == [b"ab", b" ab"]
    assert len(tok) == 256 + 2 + len(SPECIAL_TOKENS)
    with pytest.raises(ValueError, match="at least 260"):
        Tokenizer.train(texts, vocab_size=100)


def test_course_tokenizer_has_the_chosen_size_and_round_trips_every_text(data, tok):
    assert len(tok) == VOCAB_SIZE
    for ds in data.values():
        rows = ds.to_dict()
        for text in rows["input"] + rows["output"]:
            assert tok.decode(tok.encode(text)) == text


def test_common_words_are_single_tokens(tok):
    for word in [" food", " water", " fish", " hungry", " bubbles", " the"]:
        assert len(tok.encode(word)) == 1, word


def test_chat_encoding_matches_the_chat_format(tok):
    messages = [{"role": "user", "content": "are you hungry?"}, {"role": "assistant", "content": "yes."}]
    ids = tok.encode_chat(messages)
    s = tok.special_tokens
    assert ids == [s[USER], *tok.encode("are you hungry?"), s[END], s[ASSISTANT], *tok.encode("yes."), s[END]]
    assert tok.decode(ids) == format_chat(messages)
    assert tok.decode(ids, skip_special=True) == "are you hungry?yes."
    prompt = tok.encode_chat(messages[:1], add_generation_prompt=True)
    assert prompt[-1] == s[ASSISTANT] and tok.decode(prompt) == format_chat(messages[:1], add_generation_prompt=True)
    with pytest.raises(ValueError, match="unknown role"):
        tok.encode_chat([{"role": "system", "content": "x"}])


def test_decode_rejects_ids_outside_the_vocabulary(tok):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([len(tok)])


def test_save_and_load(tmp_path, tok):
    path = tok.save(tmp_path / "tokenizer.json")
    state = json.loads(path.read_text())
    assert state["format"] == "tinyllm-bpe" and state["version"] == 1 and state["vocab_size"] == len(tok)
    again = Tokenizer.load(path)
    assert again.merges == tok.merges and again.special_tokens == tok.special_tokens
    assert again.encode("hey finn 🐟") == tok.encode("hey finn 🐟")
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]   # no temporary file left


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    ('["a list"]', "is not a tinyllm-bpe tokenizer file"),
    ('{"format": "other"}', "is not a tinyllm-bpe tokenizer file"),
    ('{"format": "tinyllm-bpe", "version": 2}', "version 2; this tinyllm reads version 1"),
    ('{"format": "tinyllm-bpe", "version": 1, "pattern": "x"}', "different pre-tokenizer pattern"),
    (json.dumps({"format": "tinyllm-bpe", "version": 1, "pattern": PATTERN, "merges": [[1, 300]]}), "corrupt"),
    (json.dumps({"format": "tinyllm-bpe", "version": 1, "pattern": PATTERN, "merges": [[1, 2]],
                 "special_tokens": [], "vocab_size": 9}), "declares 9 tokens but holds 257"),
])
def test_load_errors_are_clear(tmp_path, content, message):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=message):
        Tokenizer.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        Tokenizer.load(tmp_path / "nope.json")


def test_hugging_face_tokenizers_gives_the_same_ids_on_every_training_text(tmp_path, data, tok):
    from tokenizers import Tokenizer as HFTokenizer

    hf = HFTokenizer.from_file(str(tok.to_huggingface(tmp_path / "tokenizer.json")))
    rows = data["train"].to_dict()
    texts = rows["input"] + rows["output"]
    assert [e.ids for e in hf.encode_batch(texts)] == [tok.encode(t) for t in texts]
    chats = [chat_text(r) for r in data["test"]]
    ours = [tok.encode_chat(chat_messages(r)) for r in data["test"]]   # earlier exchanges included
    assert [e.ids for e in hf.encode_batch(chats)] == ours
    assert hf.decode(ours[0], skip_special_tokens=False) == chats[0]


def test_the_tokenizer_needs_only_the_chat_format():
    "Importing the tokenizer loads the chat markers (tinyllm.chat_format), not chapter 1's generator or its data."
    loaded = subprocess.run([sys.executable, "-c", "import sys, tinyllm.tokenizer; "
                             "print(sorted(m for m in ('datasets', 'yaml', 'tinyllm.data') if m in sys.modules))"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"
