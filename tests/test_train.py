"""Chapter 5: the training loop (tinyllm/train.py) and `python -m tinyllm train`."""
import json
import math
from dataclasses import replace

import pytest
import torch

import tinyllm

from tinyllm.characters import MOCHI
from tinyllm.character import load_character
from tinyllm.chat_format import chat_text
from tinyllm.data import generate_conversations, reply_odds, unseen_questions
from tinyllm.model import IGNORE_INDEX, PRESETS, ModelConfig
from tinyllm.tokenizer import PAD, Tokenizer, train_tokenizer
from tinyllm.runs import pick_device, read_run_config, run_character
from tinyllm.judge import greedy_in_character_rate, in_character
from tinyllm.train import (REPLY_TOKENS, TRAIN_PRESETS, Example, TrainConfig, Trainer, collate,
                           encode_conversations, learning_rate, length_buckets, fit_prompt, preset_for, reply_loss,
                           reply_floor, seeded, train_run)

from command_line import run_tinyllm

FINN = load_character("finn")

TINY_MODEL = dict(n_layers=2, d_model=32, n_heads=4, d_ff=64, context_length=128, dropout=0.1)
TINY_TRAIN = TrainConfig(steps=20, batch_size=16, lr=3e-3, min_lr=3e-4, warmup_steps=4, log_every=5,
                         eval_every=10, eval_conversations=32, checkpoint_every=1_000)


@pytest.fixture(scope="module")
def data():
    return generate_conversations(1_000, seed=0)


@pytest.fixture(scope="module")
def tok(data):
    return train_tokenizer(data, vocab_size=400)


@pytest.fixture
def resume_offline(monkeypatch, data):
    "Trainer.resume rebuilds the data from the run's source; hand it the small fixture data instead."
    import tinyllm.train as train_module
    monkeypatch.setattr(train_module, "load_data", lambda source, character=None: data)


def trainer(data, tok, **overrides) -> Trainer:
    return Trainer(ModelConfig(vocab_size=len(tok), **TINY_MODEL), replace(TINY_TRAIN, **overrides), tok, data,
                   device="cpu", data_source={"n": 1_000, "seed": 0})


def weights(t: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in t.model.state_dict().items()}


def test_loss_goes_down(data, tok):
    t = trainer(data, tok, steps=150, warmup_steps=10, batch_size=32)
    before = t.evaluate(t.valid_examples)["loss"]
    t.fit(progress=False)
    after = t.evaluate(t.valid_examples)["loss"]
    assert before > 5 and after < 0.75 * before


def test_only_reply_tokens_carry_loss(tok):
    messages = [{"role": "user", "content": "are you hungry?"}]
    prompt = tok.encode_chat(messages, add_generation_prompt=True)
    reply = tok.encode("yes. always.") + [tok.special_tokens["<|end|>"]]
    example = Example(prompt + reply, len(prompt))
    pad = tok.special_tokens[PAD]
    inputs, targets = collate([example, Example(example.ids[:5], 3)], pad)
    scored = targets[0][targets[0] != IGNORE_INDEX].tolist()
    assert scored == reply                                   # exactly the reply and its <|end|>
    assert inputs[0].tolist() == example.ids[:-1]
    assert targets[1, 4:].tolist() == [IGNORE_INDEX] * (targets.size(1) - 4)   # padding
    assert (inputs[1, 4:] == pad).all()
    _, all_targets = collate([example], pad, reply_only=False)
    assert all_targets[0].tolist() == example.ids[1:]


def test_encoded_conversations_match_the_chat_format(data, tok):
    rows = data["train"].to_dict()
    examples = encode_conversations(rows, tok)
    for i in range(50):
        row = {k: v[i] for k, v in rows.items()}
        e = examples[i]
        assert tok.decode(e.ids) == chat_text(row)
        assert tok.decode(e.ids[e.reply_start:], skip_special=True) == row["output"]
        replies = [tok.decode(e.ids[start:stop], skip_special=True) for start, stop in e.replies()]
        assert replies == row["history"][1::2] + [row["output"]]


def test_every_reply_of_a_conversation_carries_loss_and_nothing_else(tok):
    rows = {"input": ["and you?"], "output": ["i am a fish."], "history": [["hi", "hello. i was swimming."]]}
    e = encode_conversations(rows, tok)[0]
    _, targets = collate([e], tok.special_tokens[PAD])
    scored = targets[0][targets[0] != IGNORE_INDEX].tolist()
    end = tok.special_tokens["<|end|>"]
    assert scored == tok.encode("hello. i was swimming.") + [end] + tok.encode("i am a fish.") + [end]
    positions = (targets[0] != IGNORE_INDEX).nonzero().flatten().tolist()
    assert positions == [t for start, stop in e.replies() for t in range(start - 1, stop - 1)]   # t predicts t + 1
    assert all(targets[0][t] == e.ids[t + 1] for t in positions)


def test_a_conversation_too_long_for_the_context_forgets_its_oldest_exchanges(tok):
    history = ["tell me everything about the water " * 4, "blub. " * 20, "hi", "hello."]
    rows = {"input": ["are you hungry?"], "output": ["yes."], "history": [history]}
    whole = encode_conversations(rows, tok)[0]
    # the prompt gets the context less REPLY_TOKENS, however short the reply: one token too few for all of it
    cut = encode_conversations(rows, tok, context_length=whole.reply_start + REPLY_TOKENS - 1)[0]
    assert len(cut.ids) < len(whole.ids) and tok.decode(cut.ids).startswith("<|user|>hi<|end|>")
    assert len(cut.earlier_replies) == 1 and cut.ids[cut.reply_start:] == whole.ids[whole.reply_start:]
    alone = encode_conversations(rows, tok, context_length=REPLY_TOKENS + 5)[0]   # then the start of the question
    assert alone.reply_start == 5 and alone.ids[0] == tok.special_tokens["<|user|>"]
    assert tok.decode(alone.ids).endswith("?<|end|><|assistant|>yes.<|end|>") and not alone.earlier_replies
    assert fit_prompt([[1, 2], [3, 4, 5]], 3) == [[3, 4, 5]] and fit_prompt([[1, 2, 3, 4, 5]], 3) == [[1, 4, 5]]


def test_a_reply_longer_than_the_reply_budget_keeps_its_room_or_is_refused(tok):
    long_reply = "blub " * (REPLY_TOKENS + 10)
    rows = {"input": ["say blub"], "output": [long_reply.strip()], "history": [["hi", "hello."]]}
    reply = len(encode_conversations(rows, tok)[0].ids) - encode_conversations(rows, tok)[0].reply_start
    assert reply > REPLY_TOKENS
    e = encode_conversations(rows, tok, context_length=reply + 8)[0]   # the prompt gets what the reply leaves
    assert e.reply_start <= 8 and len(e.ids) <= reply + 8 and tok.decode(e.ids).endswith(long_reply.strip() + "<|end|>")
    with pytest.raises(ValueError, match="do not fit in the context"):
        encode_conversations(rows, tok, context_length=reply + 2)


def test_length_buckets_cover_every_example_once_with_little_padding(data, tok):
    examples = encode_conversations(data["train"].to_dict(), tok)
    batches = length_buckets(examples, 32, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    lengths = [len(e.ids) for e in examples]
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    assert 1 - sum(lengths) / padded < 0.05
    assert batches != length_buckets(examples, 32, seed=2)
    assert batches == length_buckets(examples, 32, seed=1)


def test_schedule_values():
    c = TrainConfig(steps=1_100, batch_size=64, lr=1e-3, min_lr=1e-4, warmup_steps=100)
    assert learning_rate(0, c) == pytest.approx(1e-5)
    assert learning_rate(49, c) == pytest.approx(5e-4)
    assert learning_rate(99, c) == pytest.approx(1e-3)
    assert learning_rate(100, c) == pytest.approx(1e-3)
    assert learning_rate(600, c) == pytest.approx(5.5e-4)                # halfway down the cosine
    assert learning_rate(1_100, c) == pytest.approx(1e-4)
    assert all(learning_rate(s, c) >= learning_rate(s + 1, c) for s in range(100, 1_100))


def test_a_run_keeps_its_character_and_resume_keeps_it_too(tmp_path, data, tok, resume_offline):
    # Mochi as the character of a run on the fixture data: only the bookkeeping is tested here
    t = Trainer(ModelConfig(vocab_size=len(tok), **TINY_MODEL), replace(TINY_TRAIN, steps=2), tok, data, device="cpu",
                data_source={"n": 1_000, "seed": 0}, character=MOCHI)
    assert t.train_config.steps == 2
    t.fit(tmp_path / "run", progress=False)
    assert run_character(tmp_path / "run") == MOCHI
    assert Trainer.resume(tmp_path / "run", device="cpu").character == MOCHI
    (tmp_path / "run" / "character.yaml").unlink()
    assert run_character(tmp_path / "run") == FINN        # a run written before runs kept their character


def test_in_character_needs_an_end_the_reply_rules_and_the_topic():
    classify = lambda text: "food" if "food" in text else "greeting"   # noqa: E731
    assert in_character("i love food.", True, "food", classify, FINN)
    assert not in_character("i love food.", False, "food", classify, FINN)   # no <|end|> within the budget
    assert not in_character("i love food.", True, "greeting", classify, FINN)   # off topic
    assert not in_character("I love food.", True, "food", classify, FINN)       # not lowercase
    assert not in_character("food", True, "food", classify, FINN)               # one word, not 2-40
    assert in_character("food", True, "food", classify, replace(FINN, min_reply_words=1))


def test_greedy_in_character_rate_says_why(data, tok, monkeypatch):
    import tinyllm.judge as judge_module
    questions = unseen_questions(data, 5)
    (q1, t1), (q2, t2), (q3, _), (q4, _), (q5, t5) = questions
    other = next(t.name for t in FINN.topics if t.name not in {topic for _, topic in questions})
    # the model's reply to each question, whether it ended, and the topic a classifier finds in it: in character;
    # broken rules (capitals) on topic; kept rules off topic twice, in the same words; on topic but never ended
    replies = {q1: ("i like it here.", True, t1), q2: ("I LIKE IT HERE.", True, t2), q3: ("i swim all day.", True, other),
               q4: ("i swim all day.", True, other), q5: ("i eat and i eat and", False, t5)}
    monkeypatch.setattr(judge_module, "preview_reply", lambda model, tok, message: replies[message][:2])
    monkeypatch.setattr(judge_module, "topic_classifier", lambda rows: {text: t for text, _, t in replies.values()}.get)
    rate = greedy_in_character_rate(trainer(data, tok).model, tok, data, FINN, n=5)
    assert rate == {"in_character": 1 / 5, "well_formed": 3 / 5, "on_topic": 3 / 5, "distinct_replies": 4 / 5,
                    "prompts": 5}


def test_weight_decay_only_on_matrices(data, tok):
    t = trainer(data, tok)
    decayed, free = t.optimizer.param_groups
    assert decayed["weight_decay"] > 0 and all(p.dim() >= 2 for p in decayed["params"])
    assert free["weight_decay"] == 0 and all(p.dim() < 2 for p in free["params"])


def test_seeded_reseeds_only_the_generators_it_puts_back(monkeypatch):
    "torch.manual_seed would reseed every GPU's generator for good; seeded must touch only what it restores."
    def reseeded(*args):
        raise AssertionError("seeded reseeded a generator it does not restore")
    monkeypatch.setattr(torch.cuda, "manual_seed_all", reseeded)
    monkeypatch.setattr(torch.mps, "manual_seed", reseeded)
    with seeded(5):
        first = torch.rand(3)
    with seeded(5):
        assert torch.equal(torch.rand(3), first)


def test_training_leaves_the_callers_random_numbers_alone(data, tok):
    "The seed makes the run (weights, dropout masks) without seeding the process: the caller's draws go on as before."
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    t = trainer(data, tok, steps=3)                           # dropout on: each step draws masks
    for _ in range(3):
        t.train_step()
    assert torch.equal(torch.rand(3), expected)
    again = trainer(data, tok, steps=3)                       # another process state, the same run
    for _ in range(3):
        again.train_step()
    assert all(torch.equal(a, b) for a, b in zip(weights(t).values(), weights(again).values()))


def test_checkpoint_round_trip(tmp_path, data, tok, resume_offline):
    t = trainer(data, tok, steps=10).fit(tmp_path / "run", progress=False)
    assert {p.name for p in (tmp_path / "run").iterdir()} == {
        "model.safetensors", "config.json", "tokenizer.json", "character.yaml", "train_log.jsonl", "resume.safetensors",
        "resume.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]        # no .partial or .old left
    again = Trainer.resume(tmp_path / "run", device="cpu")
    assert again.step == 10 and again.log == t.log
    assert all(torch.equal(a, b) for a, b in zip(weights(t).values(), weights(again).values()))
    assert again.optimizer.state_dict()["state"][0]["exp_avg"].equal(t.optimizer.state_dict()["state"][0]["exp_avg"])
    assert Tokenizer.load(tmp_path / "run" / "tokenizer.json").merges == tok.merges
    assert run_character(tmp_path / "run") == FINN == again.character


def test_ctrl_c_saves_and_resume_ends_with_the_same_weights(tmp_path, data, tok, resume_offline):
    straight = trainer(data, tok, steps=20).fit(progress=False)                 # dropout on: RNG matters
    interrupted = trainer(data, tok, steps=20)
    real_step = interrupted.train_step

    def step_then_ctrl_c():
        if interrupted.step == 12:
            raise KeyboardInterrupt
        return real_step()
    interrupted.train_step = step_then_ctrl_c
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(tmp_path / "run", progress=False)
    assert read_run_config(tmp_path / "run")["step"] == 12
    resumed = Trainer.resume(tmp_path / "run", device="cpu").fit(tmp_path / "run", progress=False)
    for name, value in weights(straight).items():
        assert torch.equal(value, weights(resumed)[name]), name


def test_a_checkpoint_mid_run_resumes_identically(tmp_path, data, tok, resume_offline):
    straight = trainer(data, tok, steps=20).fit(progress=False)
    # as if Ctrl-C stopped the run at step 16: save there, resume, finish
    interrupted = trainer(data, tok, steps=20)
    while interrupted.step < 16:
        interrupted.train_step()
    interrupted.save(tmp_path / "cut")
    resumed = Trainer.resume(tmp_path / "cut", device="cpu").fit(progress=False)
    assert all(torch.equal(a, b) for a, b in zip(weights(straight).values(), weights(resumed).values()))


def test_the_first_log_after_a_resume_averages_the_steps_it_ran(tmp_path, data, tok, resume_offline):
    every_step = trainer(data, tok, steps=20, log_every=1).fit(progress=False)   # one log entry per step
    interrupted = trainer(data, tok, steps=20)
    while interrupted.step < 16:
        interrupted.train_step()
    interrupted.save(tmp_path / "cut")
    resumed = Trainer.resume(tmp_path / "cut", device="cpu").fit(progress=False)
    assert resumed.log[-1]["step"] == 20   # steps 17 to 20, not a whole log_every of 5
    assert resumed.log[-1]["loss"] == pytest.approx(sum(e["loss"] for e in every_step.log[16:20]) / 4, rel=1e-6)
    assert resumed.log[-1]["seconds_per_step"] > 0


def test_fp16_autocast_and_grad_scaler_path_runs(data, tok):
    t = trainer(data, tok, steps=3, amp=True)
    assert t.amp and t.scaler.is_enabled()
    t.fit(progress=False)
    assert all(torch.isfinite(p).all() for p in t.model.parameters())
    assert math.isfinite(t.evaluate(t.valid_examples)["loss"])


class HalfSureOfTheEnd(torch.nn.Module):
    "A stand-in model over 513 tokens: <|end|> next with probability 1/2, 1/1024 for each other token."
    def __init__(self, end: int):
        super().__init__()
        self.end, self.unused = end, torch.nn.Parameter(torch.zeros(()))

    def forward(self, ids, targets=None):
        logits = torch.zeros(*ids.shape, 513)
        logits[..., self.end] = 9 * math.log(2)                    # 512 / (512 + 512 others)
        return logits, None


def test_evaluation_reports_nats_and_bits_per_byte(data, tok):
    t = trainer(data, tok)
    assert t.evaluate(t.valid_examples)["loss"] == pytest.approx(math.log(len(tok)), rel=0.15)   # untrained: ~ln V
    # known values: each reply's <|end|> costs 1 bit, each of its other tokens 10 bits (log2 1024)
    end = tok.special_tokens["<|end|>"]
    prompt = tok.encode_chat([{"role": "user", "content": "are you hungry?"}], add_generation_prompt=True)
    replies = [tok.encode("yes."), tok.encode("blub. i am here.")]            # 4 + 16 = 20 bytes of reply text
    examples = [Example(prompt + reply + [end], len(prompt)) for reply in replies]
    text_tokens = len(replies[0]) + len(replies[1])
    bits = 10 * text_tokens + 2
    score = reply_loss(HalfSureOfTheEnd(end), tok, examples)
    assert score["loss"] == pytest.approx(bits * math.log(2) / (text_tokens + 2))   # nats per reply token
    assert score["bits_per_byte"] == pytest.approx(bits / 20)


def test_presets_exist_with_their_model_shapes():
    assert set(TRAIN_PRESETS) == set(PRESETS) == {"t4", "cpu"}, "each training recipe has a model shape of its name"


def test_run_directory_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run directory"):
        read_run_config(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        read_run_config(tmp_path / "half")
    for name in ("model.safetensors", "tokenizer.json"):
        (tmp_path / "half" / name).write_text("x")
    (tmp_path / "half" / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        read_run_config(tmp_path / "half")
    with pytest.raises(ValueError, match="unknown preset"):
        train_run(tmp_path / "new", preset="gpu")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--resume"):
        train_run(tmp_path / "full", preset="cpu")


def test_preset_for_picks_t4_on_a_cuda_gpu_only(monkeypatch):
    import tinyllm.train as train_module
    assert preset_for("cpu") == "cpu"
    for device, preset in (("cuda", "t4"), ("cuda:1", "t4"), ("mps", "cpu"), ("cpu", "cpu")):
        monkeypatch.setattr(train_module, "pick_device", lambda name=None, device=device: torch.device(device))
        assert preset_for() == preset, device


def run_cli(*args):
    return run_tinyllm("train", *args)


@pytest.mark.slow
def test_cli_trains_a_few_steps_and_resumes(tmp_path):
    result = run_cli("--out", str(tmp_path / "run"), "--steps", "3", "--device", "cpu")   # no --preset: the CPU's
    assert result.returncode == 0, result.stderr
    assert "trained 3 steps" in result.stdout
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["step"] == 3 and config["train"]["steps"] == 3
    assert {k: config["model"][k] for k in PRESETS["cpu"]} == PRESETS["cpu"], "on a CPU the cpu preset's shape"
    again = run_cli("--preset", "cpu", "--out", str(tmp_path / "run"), "--steps", "4", "--resume")
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["step"] == 4


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--preset", "gpu", "--out", "x"], "invalid choice: 'gpu'"),
    (["--preset", "cpu", "--out", "x", "--steps", "0"], "--steps: must be a positive whole number"),
    (["--preset", "cpu"], "the following arguments are required: --out"),
])
def test_cli_bad_arguments_get_one_line(tmp_path, args, message):
    result = run_cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_cli_refuses_a_non_empty_out_and_a_missing_resume(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = run_cli("--preset", "cpu", "--out", str(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "already exists and is not empty" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"
    result = run_cli("--preset", "cpu", "--out", str(tmp_path / "nothing"), "--resume")
    assert result.returncode == 1 and "no run directory" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
@pytest.mark.parametrize("command", [("train", "--preset", "cpu", "--out", "{tmp}/never"),
                                     ("chat", "finn", "--prompt", "hi"), ("eval", "finn")])
def test_cli_device_that_is_not_there_gets_one_line_before_any_work(command, tmp_path):
    result = run_tinyllm(*(part.format(tmp=tmp_path) for part in command), "--device", "cuda")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "device 'cuda' is not available: this PyTorch can use cpu" in result.stderr
    assert not (tmp_path / "never").exists()


def test_pick_device_names_what_there_is():
    assert pick_device("cpu") == torch.device("cpu") and pick_device(None).type in {"cpu", "cuda", "mps"}
    with pytest.raises(ValueError, match="device 'gpu' is not available"):
        pick_device("gpu")
    with pytest.raises(ValueError, match="device 'cuda:7' is not available"):
        pick_device("cuda:7")


def test_the_floor_is_the_generators_own_surprise_per_reply_token():
    noted = {}
    rows = generate_conversations(2_000, seed=0, question_slots=noted)["test"].to_dict()
    tok = tinyllm.load("finn-cpu", device="cpu").tok
    examples = [Example(e.ids, e.reply_start) for e in encode_conversations(rows, tok, 128)]
    tokens = sum(len(e.ids) - e.reply_start for e in examples)   # the last replies' tokens, as reply_loss scores them
    topics = {t.name: t for t in FINN.topics}
    nats = -sum(math.log(reply_odds(topics[t], FINN, noted[m, a, t])[a])
                for m, a, t in zip(rows["input"], rows["output"], rows["category"]))
    assert math.isclose(reply_floor(rows, FINN, noted, tok), nats / tokens)
    with pytest.raises(ValueError, match="no slots noted"):
        reply_floor(rows, FINN, {}, tok)
    wrong = dict(rows, output=["i am not a fish."] + rows["output"][1:])
    with pytest.raises(ValueError, match="never writes"):
        reply_floor(wrong, FINN, noted | {(wrong["input"][0], wrong["output"][0], wrong["category"][0]): {}}, tok)
