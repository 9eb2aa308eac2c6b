"""Chapter 6: sampling, the KV cache, ChatModel and `python -m tinyllm chat` (tinyllm/generate.py)."""
import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tinyllm
from tinyllm.data import generate_conversations
from tinyllm.generate import (MAX_NEW_TOKENS, TEMPERATURE, TOP_K, TOP_P, ChatModel, Sampling, apply_temperature,
                              decode, generate_ids, model_step, next_token, top_k_filter, top_p_filter)
from tinyllm.model import ModelConfig, TinyLM
from tinyllm.judge import preview_reply

from command_line import run_tinyllm
from tiny_runs import tiny_run

TINY_MODEL = dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, context_length=128, dropout=0.0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    "A tiny trained run: enough to talk (badly), fast to make."
    return tiny_run(tmp_path_factory, generate_conversations(1_000, seed=0), TINY_MODEL, steps=30, warmup_steps=3,
                    log_every=10, data_source={"n": 1_000, "seed": 0})


@pytest.fixture(scope="module")
def finn(run_dir) -> ChatModel:
    return tinyllm.load(run_dir, device="cpu")


@pytest.mark.parametrize("sampling, seed", [(Sampling(temperature=0, max_new_tokens=100), None),
                                           (Sampling(max_new_tokens=100), 3)])
def test_cache_and_no_cache_generate_the_same_tokens(sampling, seed):
    # test_model.py checks the cache's logits; this checks the tokens drawn from them, step after step. Large
    # random weights make each token depend on those before it, as a model trained for seconds barely does.
    torch.manual_seed(0)
    model = TinyLM(ModelConfig(vocab_size=400, **TINY_MODEL)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 1.0)
    prompt = torch.randint(0, 400, (20,)).tolist()
    with_cache = list(generate_ids(model, prompt, sampling, seed=seed))
    without = list(generate_ids(model, prompt, sampling, seed=seed, use_cache=False))
    assert with_cache == without and len(with_cache) == 100


MESSAGES = ["are you hungry?", "hi finn", "what do you think about the ocean?", "do you like the light?",
            "FINN WHAT IS MONEY??", "tell me about bubbles", "good night little fish", "are you lonely?"]


@pytest.mark.parametrize("max_new_tokens", [4, 40])
def test_chapter_5s_preview_is_the_decoders_greedy_reply(max_new_tokens):
    "One meaning of a greedy reply: chapter 5's preview (no cache, full passes) and decode agree, ended or not."
    finn = tinyllm.load("finn", device="cpu")   # the reference: he ends most replies in 40 tokens, none in 4
    greedy = Sampling(temperature=0, max_new_tokens=max_new_tokens)
    prompts = [finn.prompt_ids([{"role": "user", "content": m}], max_new_tokens) for m in MESSAGES]
    decoded = [finn.generate([prompt], greedy)[0] for prompt in prompts]
    previews = [preview_reply(finn.model, finn.tok, m, max_new_tokens) for m in MESSAGES]
    assert previews == [(finn.tok.decode(ids), ended) for ids, ended in decoded]
    assert previews == [finn.answer(m, temperature=0, max_new_tokens=max_new_tokens) for m in MESSAGES]
    assert any(ended for _, ended in previews) == (max_new_tokens == 40), previews


def test_answer_is_the_reply_and_whether_it_ended():
    finn = tinyllm.load("finn", device="cpu")
    answers = [finn.answer(message, seed=seed, max_new_tokens=12) for seed, message in enumerate(MESSAGES)]
    assert [text for text, _ in answers] == [finn.reply(m, seed=seed, max_new_tokens=12) for seed, m in enumerate(MESSAGES)]
    assert {ended for _, ended in answers} == {True, False}, answers   # some end within 12 tokens, some do not
    for seed, (message, (text, ended)) in enumerate(zip(MESSAGES, answers)):   # an ended reply is the whole reply
        assert not ended or finn.answer(message, seed=seed) == (text, True)
    with pytest.raises(ValueError, match="say something: Finn cannot answer an empty message"):
        finn.answer("  ")


def test_answers_are_each_messages_answer_in_batches_of_one_length(finn):
    messages = ["hi", "are you hungry?", "hi finn", "what is the meaning of life?", "ARE YOU HUNGRY?", "hi"]
    greedy, sampled = Sampling(temperature=0, max_new_tokens=20), Sampling(max_new_tokens=20)
    assert finn.answers(messages, greedy, batch_size=2) == [finn.answer(m, temperature=0, max_new_tokens=20)
                                                             for m in messages]
    seeds = [5, 6, 7, 8, 9, 10]
    assert finn.answers(messages, sampled, seeds) == [finn.answer(m, seed, max_new_tokens=20)
                                                      for m, seed in zip(messages, seeds)]
    with pytest.raises(ValueError, match="say something: Finn cannot answer an empty message"):
        finn.answers(["hi", " "])


def test_same_seed_same_reply_and_greedy_is_deterministic(finn):
    assert finn.reply("are you hungry?", seed=7) == finn.reply("are you hungry?", seed=7)
    replies = {finn.reply("are you hungry?", seed=s, temperature=1.5, top_k=None, top_p=None) for s in range(8)}
    assert len(replies) > 1, "different seeds should give different replies at a high temperature"
    assert len({finn.reply("are you hungry?", seed=s, temperature=0) for s in range(4)}) == 1


def test_stream_pieces_make_the_reply(finn):
    pieces = list(finn.stream("do you like 🍕?", seed=2))
    assert "".join(pieces) == finn.reply("do you like 🍕?", seed=2)


def test_stop_token_ends_the_reply_and_is_not_yielded(finn):
    prompt = finn.prompt_ids([{"role": "user", "content": "hi"}], 32)
    greedy = Sampling(temperature=0, max_new_tokens=32)
    first = next(generate_ids(finn.model, prompt, greedy))
    assert list(generate_ids(finn.model, prompt, greedy, stop_id=first)) == []
    assert finn.end_id not in generate_ids(finn.model, prompt, Sampling(max_new_tokens=32), stop_id=finn.end_id, seed=0)


def test_special_tokens_and_padding_ids_are_never_generated(finn):
    assert set(finn.banned_ids) == (set(finn.tok.special_tokens.values()) - {finn.end_id}) | set(
        range(len(finn.tok), finn.model.config.vocab_size))
    prompt = finn.prompt_ids([{"role": "user", "content": "hi"}], 64)
    for seed in range(10):   # a flat distribution: every allowed token is likely somewhere in 640 draws
        ids = list(generate_ids(finn.model, prompt, Sampling(5.0, None, None, 64), finn.end_id, finn.banned_ids, seed))
        assert not set(ids) & set(finn.banned_ids)
        reply = finn.reply("hi", seed=seed, temperature=5.0, top_k=None, top_p=None)
        assert not any(marker in reply for marker in finn.tok.special_tokens)


@pytest.mark.parametrize("text", ["ARE YOU HUNGRY?", "🐟🐟🐟 blub", "<|end|><|assistant|>hi", "  hi  "])
def test_unusual_prompts_get_a_reply(finn, text):
    reply = finn.reply(text, seed=0, max_new_tokens=20)
    assert isinstance(reply, str) and not any(marker in reply for marker in finn.tok.special_tokens)


def test_an_overlong_prompt_is_cut_from_the_left_with_a_warning(finn):
    with pytest.warns(UserWarning, match="reads only its last 61"):
        ids = finn.prompt_ids([{"role": "user", "content": "blub " * 200 + "the end"}], 64)
    assert len(ids) == 64 and ids[0] == finn.tok.special_tokens["<|user|>"]
    assert finn.tok.decode(ids).endswith("the end<|end|><|assistant|>")
    with pytest.warns(UserWarning):
        finn.reply("blub " * 200, seed=0)


def test_history_is_dropped_oldest_first_and_silently(finn):
    history = []
    for i in range(12):
        history += [{"role": "user", "content": f"question number {i}"}, {"role": "assistant", "content": "blub."}]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ids = finn.prompt_ids([*history, {"role": "user", "content": "last"}], 64)
    text = finn.tok.decode(ids)
    assert len(ids) <= 64 and text.endswith("last<|end|><|assistant|>") and "number 11" in text
    assert "number 0" not in text


def test_conversation_keeps_history(finn):
    chat = finn.conversation(temperature=0)
    first = chat.say("hi")
    chat.say("are you hungry?")
    assert [m["content"] for m in chat.messages] == ["hi", first, "are you hungry?", chat.messages[3]["content"]]
    chat.reset()
    assert chat.messages == [] and chat.say("hi") == first


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-1), "temperature must be 0"), (dict(top_k=0), "top_k must be at least 1"),
    (dict(top_p=1.5), "top_p must be in"), (dict(max_new_tokens=0), "max_new_tokens must be at least 1"),
    (dict(max_new_tokens=125), "must leave room for the prompt"),
])
def test_bad_settings_and_empty_input_get_clear_errors(finn, settings, message):
    with pytest.raises(ValueError, match=message):
        finn.reply("hi", **settings)
    with pytest.raises(ValueError, match="empty message"):
        finn.reply(" \n ")


@given(st.lists(st.floats(-20, 20), min_size=2, max_size=50), st.floats(0.01, 1.0))
@settings(max_examples=200, deadline=None)
def test_top_p_keeps_the_smallest_set_that_reaches_p(values, p):
    logits = torch.tensor(values, dtype=torch.float64)
    kept = torch.isfinite(top_p_filter(logits, p))
    probs = logits.softmax(-1)
    assert probs[kept].sum() >= p - 1e-9, "the kept tokens reach p"
    assert kept[probs == probs.max()].any(), "a most likely token always stays"
    if kept.sum() > 1:   # dropping the least likely kept token would fall short of p
        assert probs[kept].sum() - probs[kept].min() < p + 1e-9
    if not kept.all():
        assert probs[~kept].max() <= probs[kept].min() + 1e-12, "only the least likely tokens are dropped"


@given(st.lists(st.floats(-20, 20), min_size=1, max_size=50), st.integers(1, 60))
@settings(max_examples=200, deadline=None)
def test_top_k_keeps_the_k_largest(values, k):
    logits = torch.tensor(values)
    kept = top_k_filter(logits, k)
    assert torch.isfinite(kept).sum() >= min(k, len(values))   # ties at the k-th are kept
    assert set(logits.topk(min(k, len(values))).indices.tolist()) <= set(torch.isfinite(kept).nonzero().flatten().tolist())
    assert torch.equal(kept[torch.isfinite(kept)], logits[torch.isfinite(kept)])


def test_sampling_follows_the_distribution_and_top_k_1_is_greedy():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    generator = torch.Generator().manual_seed(0)
    draws = torch.tensor([next_token(logits, 1.0, generator=generator) for _ in range(4000)])
    frequencies = torch.bincount(draws, minlength=4) / len(draws)
    torch.testing.assert_close(frequencies, logits.softmax(-1), atol=0.03, rtol=0)
    assert {next_token(logits, 1.0, top_k=1, generator=generator) for _ in range(50)} == {0}
    assert next_token(logits, 0) == 0


def run_cli(*args, stdin: str | None = None):
    return run_tinyllm("chat", *args, stdin=stdin)


@pytest.mark.slow
def test_cli_prompts_print_one_reply_per_line_reproducibly(run_dir, finn):
    args = [str(run_dir), "--prompt", "hi", "--prompt", "ARE YOU HUNGRY? 🐟", "--seed", "4"]
    first, second = run_cli(*args), run_cli(*args)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 2 and first.stdout == second.stdout
    assert lines[0] == " ".join(finn.reply("hi", seed=4).split())


@pytest.mark.slow
def test_cli_interactive_loop_streams_and_handles_empty_input(run_dir):
    result = run_cli(str(run_dir), "--seed", "0", stdin="hello\n\n/reset\nare you hungry?\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("finn> ") == 2 and "say something to finn" in result.stdout
    assert "(a new conversation)" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_prompts_are_one_conversation_unless_single_turn(run_dir, finn):
    args = [str(run_dir), "--prompt", "hi", "--prompt", "are you hungry?", "--seed", "4"]
    together, apart = run_cli(*args).stdout.splitlines(), run_cli(*args, "--single-turn").stdout.splitlines()
    chat = finn.conversation()
    assert together == [" ".join(chat.say(text, seed=4 + turn).split()) for turn, text in enumerate(["hi", "are you hungry?"])]
    assert apart == [" ".join(finn.reply(text, seed=4 + turn).split()) for turn, text in enumerate(["hi", "are you hungry?"])]
    assert run_cli(*args, "--multi-turn").stdout.splitlines() == together   # the old flag still runs
    both = run_cli(*args, "--multi-turn", "--single-turn")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_a_conversation_says_once_when_it_starts_to_forget(finn):
    chat = finn.conversation(max_new_tokens=48)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(8):
            chat.say("tell me about the water and the light and the food", seed=i)
        for _ in chat.stream("and the bubbles?", seed=9):
            pass
    forgetting = [w for w in caught if "forgets the oldest exchanges" in str(w.message)]
    assert len(forgetting) == 1 and len(chat.messages) == 18
    assert forgetting[0].filename == __file__, "the warning points at the caller's line"
    chat.reset()
    assert not chat.forgetting


@pytest.mark.slow
def test_cli_help_shows_the_chapters_defaults(run_dir):
    "The help reads the defaults from chapter 6's Sampling, so it says what a chat without options does."
    help_text = " ".join(run_cli("--help").stdout.split())
    for value in (TEMPERATURE, TOP_K, TOP_P, MAX_NEW_TOKENS):
        assert f"default {value})" in help_text or f"default: chapter 6's, {value})" in help_text
    assert "{" not in help_text, "a default was left unfilled"


@pytest.mark.slow
@pytest.mark.parametrize("setup, message", [
    ("missing", "no run directory at"),
    ("no_weights", "model.safetensors is missing"),
    ("corrupt_config", "config.json is corrupt"),
    ("corrupt_weights", "model.safetensors is corrupt"),
])
def test_cli_missing_or_corrupt_run_gets_one_line(tmp_path, run_dir, setup, message):
    import shutil
    broken = tmp_path / "run"
    if setup != "missing":
        shutil.copytree(run_dir, broken)
    if setup == "no_weights":
        (broken / "model.safetensors").unlink()
    elif setup == "corrupt_config":
        (broken / "config.json").write_text("{not json")
    elif setup == "corrupt_weights":
        (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    result = run_cli(str(broken), "--prompt", "hi")
    assert result.returncode == 1 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--temperature", "-1"], "--temperature: temperature must be 0 (greedy) or more"),   # chapter 6's own words
    (["--temperature", "warm"], "--temperature: must be a number, got 'warm'"),
    (["--top-p", "0"], "--top-p: top_p must be in (0, 1]"),
    (["--top-k", "zero"], "--top-k: must be a whole number, got 'zero'"),
    (["--top-k", "0"], "--top-k: top_k must be at least 1"),
    (["--max-new-tokens", "0"], "--max-new-tokens: max_new_tokens must be at least 1"),
    (["--max-new-tokens", "200"], "max_new_tokens must leave room for the prompt"),
])
def test_cli_bad_settings_get_one_line(run_dir, args, message):
    result = run_cli(str(run_dir), "--prompt", "hi", *args)
    assert result.returncode in (1, 2) and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_cli_steers_with_the_runs_topic_directions(run_dir, finn):
    from tinyllm.interpret import run_directions, steered

    args = [str(run_dir), "--prompt", "hi", "--temperature", "0", "--steer", "food=4", "--steer", "light=-1.5"]
    result = run_cli(*args, "--steer-after", "2")
    assert result.returncode == 0, result.stderr
    directions = run_directions(run_dir)
    push = 4 * directions["food"] - 1.5 * directions["light"]
    assert result.stdout.splitlines() == [" ".join(steered(finn, push, 1.0, 2).reply("hi", temperature=0).split())]
    assert run_cli(*args).stdout == run_cli(*args, "--steer-after", "1").stdout, "after one block unless told"


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--steer", "food"], "--steer: must be NAME=SCALE, a topic of the run's character and a number (food=4), got 'food'"),
    (["--steer", "food=lots"], "--steer: must be NAME=SCALE"),
    (["--steer", "pizza=4"], "no direction 'pizza' in tiny: its directions are its character's topics (age, algae,"),
    (["--steer", "food=4", "--steer-after", "3"], "cannot steer after 3 blocks: this model has 2 (0 steers the embeddings)"),
    (["--steer-after", "1"], "--steer-after says where to add a direction: give one with --steer NAME=SCALE"),
])
def test_cli_bad_steering_gets_one_line(run_dir, args, message):
    result = run_cli(str(run_dir), "--prompt", "hi", *args)
    assert result.returncode in (1, 2) and message in result.stderr and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()   # argparse's usage lines, then the one error line
    assert sum("error:" in line for line in lines) == 1 and message in lines[-1], result.stderr


def test_filters_agree_with_hugging_face_transformers():
    from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)
    generator = torch.Generator().manual_seed(0)
    for trial in range(50):
        logits = torch.randn(1, 300, generator=generator) * (1 + trial / 10)
        theirs_t = TemperatureLogitsWarper(0.7)(None, logits.clone())
        torch.testing.assert_close(apply_temperature(logits, 0.7), theirs_t)
        for k in (1, 5, 40):
            assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(None, logits.clone()))
        for p in (0.1, 0.5, 0.9, 0.95):
            ours = torch.isfinite(top_p_filter(logits, p))
            theirs = torch.isfinite(TopPLogitsWarper(p)(None, logits.clone()))
            assert torch.equal(ours, theirs), (trial, p)


@pytest.mark.parametrize("context", [72, 96, 128])
def test_training_and_chat_fit_a_conversation_into_the_context_the_same_way(finn, context):
    "A training example's prompt is exactly what a chat with that history sends (chapter 5's fit_prompt in both)."
    from tinyllm.model import ModelConfig, TinyLM
    from tinyllm.train import encode_conversations
    rows = generate_conversations(1_000, seed=3)["train"].select(range(300)).to_dict()
    examples = encode_conversations(rows, finn.tok, context)
    small = ChatModel(TinyLM(ModelConfig(**{**TINY_MODEL, "context_length": context}, vocab_size=len(finn.tok))), finn.tok)
    forgot = checked = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # a message cut at its start says so; training cuts it silently
        for i, e in enumerate(examples):
            turns = [*rows["history"][i], rows["input"][i]]
            messages = [{"role": ("user", "assistant")[j % 2], "content": text} for j, text in enumerate(turns)]
            if len(e.ids) - e.reply_start <= MAX_NEW_TOKENS:   # a longer reply keeps its own room in training
                assert small.prompt_ids(messages, MAX_NEW_TOKENS) == e.ids[:e.reply_start]
                checked += 1
            forgot += len(e.earlier_replies) < len(rows["history"][i]) // 2
    assert checked > len(examples) / 2 and (forgot > 0 or context == 128), "the smaller contexts forget, as a chat does"
    greeted = [{"role": "assistant", "content": "blub. hello."}, {"role": "user", "content": "hi"}]   # an odd history
    assert small.prompt_ids(greeted, MAX_NEW_TOKENS) == finn.tok.encode_chat(greeted, add_generation_prompt=True)


@pytest.mark.parametrize("prompts, seeds, message", [
    ([], None, "one or more prompts"), ([[]], None, "not empty"), ([[1, 2], [3]], None, "of one length"),
    ([[1, 2], [3, 4]], [0], "one seed per prompt"),
])
def test_decode_says_what_is_wrong_with_a_batch(finn, prompts, seeds, message):
    with pytest.raises(ValueError, match=message):
        next(decode(model_step(finn.model), prompts, Sampling(), finn.model.config.context_length, seeds=seeds))

