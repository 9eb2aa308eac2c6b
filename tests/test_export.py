"""Chapter 10: Finn exported to Hugging Face transformers, ONNX and a web page computes what tinyllm computes.

Each export is checked against our own model on real conversations of the test split: logits within TOLERANCE,
and greedy replies token for token. The reference run is float16 on disk and exported as it loads (float32);
a tiny run trained here adds a model whose vocabulary is padded beyond its tokenizer and whose weights are float32.
"""
import base64
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

from tinyllm.cli import main
from tinyllm.chat_format import chat_messages
from tinyllm.data import generate_conversations
from safetensors.torch import load as load_safetensors

from tinyllm.interpret import STEER_AFTER, run_directions
from tinyllm.export import (CHAT_TEMPLATE, CachedStep, OnnxChat, export_hf, export_onnx, export_web, gpt2_config,
                            gpt2_name, int8_weights, page_model, quantize_rows, quiet, require, to_gpt2_state_dict,
                            web_model_data)
from tinyllm.generate import MAX_NEW_TOKENS, TEMPERATURE, TOP_P, Sampling, generate_ids, load

from command_line import run_tinyllm
from tiny_runs import tiny_run

# float32 sums taken in another order (another kernel, another machine) differ in the last digits; a wrong
# mapping (a matrix left untransposed, the wrong activation) is wrong by whole units
TOLERANCE = 1e-4
GREEDY_PROMPTS = 24


@pytest.fixture(scope="module")
def asked(finn, test_rows):
    "Test conversations without their last reply, with earlier exchanges, whose prompt fits as it is."
    conversations = (chat_messages(row)[:-1] for row in test_rows)
    room = finn.model.config.context_length - MAX_NEW_TOKENS
    return [m for m in conversations if len(finn.tok.encode_chat(m, True)) <= room][:GREEDY_PROMPTS]


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return export_hf("finn-cpu", tmp_path_factory.mktemp("hf") / "finn")


@pytest.fixture(scope="module")
def hf_model(hf_folder):
    return transformers.AutoModelForCausalLM.from_pretrained(hf_folder).eval()


@pytest.fixture(scope="module")
def hf_tokenizer(hf_folder):
    return transformers.AutoTokenizer.from_pretrained(hf_folder)


@pytest.fixture(scope="module")
def onnx_folder(tmp_path_factory):
    return export_onnx("finn-cpu", tmp_path_factory.mktemp("onnx") / "finn")


@pytest.fixture(scope="module")
def tiny_run_dir(tmp_path_factory):
    shape = dict(n_layers=2, d_model=48, n_heads=3, d_ff=96, context_length=96, dropout=0.0)
    return tiny_run(tmp_path_factory, generate_conversations(1_000, seed=0), shape, steps=30, warmup_steps=3,
                    log_every=10, data_source={"n": 1_000, "seed": 0})


def padded_batch(chat, rows):
    "Whole test conversations as one batch padded at the end, and which positions are real."
    pad = chat.tok.special_tokens["<|pad|>"]
    batch = [chat.tok.encode_chat(chat_messages(row))[:chat.model.config.context_length] for row in rows]
    length = max(map(len, batch))
    ids = torch.tensor([c + [pad] * (length - len(c)) for c in batch])
    real = torch.tensor([[t < len(c) for t in range(length)] for c in batch])
    return ids, real


GREEDY = Sampling(temperature=0)


def our_greedy_ids(chat, messages, banned_ids=None) -> list[int]:
    prompt = chat.prompt_ids(messages, MAX_NEW_TOKENS)
    banned = chat.banned_ids if banned_ids is None else banned_ids
    return list(generate_ids(chat.model, prompt, GREEDY, chat.end_id, banned))


def onnx_greedy_ids(onnx_chat, messages) -> list[int]:
    "The greedy reply with the ONNX graph as chapter 6's decode step."
    [(ids, _)] = onnx_chat.generate([onnx_chat.prompt_ids(messages, MAX_NEW_TOKENS)], GREEDY)
    return ids


def hf_greedy_ids(model, tokenizer, messages, **settings) -> list[int]:
    "transformers alone: its chat template, its generate, the folder's generation config but greedy."
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    new = model.generate(**inputs, do_sample=False, **settings)[0, inputs["input_ids"].shape[1]:].tolist()
    return new[:-1] if new and new[-1] == tokenizer.eos_token_id else new


# ---------------------------------------------------------------- Hugging Face transformers

def test_every_parameter_has_one_place_in_gpt2_with_gpt2s_shape(finn):
    renamed = to_gpt2_state_dict(finn.model)
    assert len(renamed) == len(list(finn.model.parameters()))   # one-to-one: no two of ours share a name
    gpt2 = transformers.GPT2LMHeadModel(gpt2_config(finn)).state_dict()
    for name, tensor in renamed.items():
        assert gpt2[name].shape == tensor.shape, name
    assert set(gpt2) - set(renamed) <= {"lm_head.weight"} | {k for k in gpt2 if k.endswith(".attn.bias")}
    assert gpt2_name("blocks.1.attention.qkv.weight") == ("transformer.h.1.attn.c_attn.weight", True)


def test_transformers_gives_our_logits_on_real_conversations(finn, hf_model, test_rows):
    model = hf_model
    ids, real = padded_batch(finn, test_rows[:64])
    with torch.no_grad():
        ours, theirs = finn.model(ids)[0], model(ids, attention_mask=real.long()).logits
    assert (ours - theirs).abs()[real].max() < TOLERANCE


def test_transformers_greedy_replies_equal_ours_token_for_token(finn, hf_model, hf_tokenizer, asked):
    model, tokenizer = hf_model, hf_tokenizer
    assert len(asked) >= 20 and any(len(m) > 1 for m in asked)   # multi-turn prompts among them
    for messages in asked:
        assert hf_greedy_ids(model, tokenizer, messages) == our_greedy_ids(finn, messages), messages


def test_chat_template_equals_encode_chat_on_every_test_conversation(finn, hf_tokenizer, test_rows):
    tokenizer = hf_tokenizer
    assert tokenizer.chat_template == CHAT_TEMPLATE
    for row in test_rows:
        messages = chat_messages(row)
        assert tokenizer.apply_chat_template(messages, return_dict=True)["input_ids"] == finn.tok.encode_chat(messages)
        asked = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, return_dict=True)["input_ids"]
        assert asked == finn.tok.encode_chat(messages[:-1], add_generation_prompt=True)
    with pytest.raises(Exception, match="unknown role system"):
        tokenizer.apply_chat_template([{"role": "system", "content": "be nice"}])


def test_the_folder_loads_and_chats_in_a_python_without_tinyllm(finn, hf_folder):
    script = f"""
import sys
from transformers import AutoModelForCausalLM, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained({str(hf_folder)!r})
model = AutoModelForCausalLM.from_pretrained({str(hf_folder)!r})
inputs = tokenizer.apply_chat_template([{{"role": "user", "content": "are you hungry?"}}], add_generation_prompt=True,
                                       return_dict=True, return_tensors="pt")
print(tokenizer.decode(model.generate(**inputs, do_sample=False)[0, inputs["input_ids"].shape[1]:],
                       skip_special_tokens=True))
print(model.generation_config.do_sample, model.generation_config.temperature, model.generation_config.top_p)
print(any(name.startswith("tinyllm") for name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    reply, sampling, imported = result.stdout.splitlines()
    assert reply == finn.reply("are you hungry?", temperature=0)
    assert sampling == f"True {TEMPERATURE} {TOP_P}"   # chapter 6's defaults travel in generation_config.json
    assert imported == "False"
    card = (hf_folder / "README.md").read_text()
    assert "library_name: transformers" in card and "apply_chat_template" in card


# ---------------------------------------------------------------- ONNX

def test_cached_step_is_the_model_for_a_prompt_and_then_token_by_token(finn, test_rows):
    step = CachedStep(finn.model)
    ids = torch.tensor([finn.tok.encode_chat(chat_messages(test_rows[0]))])
    with torch.no_grad():
        full = finn.model(ids)[0][0]
        logits, keys, values = step(ids[:, :5], step.empty_cache(), step.empty_cache())
        pieces = [logits[0]]
        for t in range(5, ids.shape[1]):
            logits, keys, values = step(ids[:, t:t + 1], keys, values)
            pieces.append(logits[0])
    c = finn.model.config
    assert keys.shape == (c.n_layers, 1, c.n_heads, ids.shape[1], c.d_model // c.n_heads)
    assert (torch.cat(pieces) - full).abs().max() < TOLERANCE


def test_onnx_runtime_gives_our_logits_for_a_batch_and_through_its_cache(finn, onnx_folder, test_rows):
    onnx_finn = OnnxChat(onnx_folder / "model.onnx", finn)
    ids, real = padded_batch(finn, test_rows[:64])
    empty = CachedStep(finn.model).empty_cache(len(ids)).numpy()
    logits, _, _ = onnx_finn.session.run(None, {"input_ids": ids.numpy(), "past_keys": empty, "past_values": empty})
    with torch.no_grad():
        ours = finn.model(ids)[0].numpy()
    assert np.abs(logits - ours)[real.numpy()].max() < TOLERANCE
    # the same conversation in three calls: 10 tokens, then 1, then the rest, each with the cache of the last
    one = ids[:1, :int(real[0].sum())].numpy()
    keys = values = CachedStep(finn.model).empty_cache().numpy()
    outputs = []
    for start, end in [(0, 10), (10, 11), (11, one.shape[1])]:
        part, keys, values = onnx_finn.session.run(None, {"input_ids": one[:, start:end], "past_keys": keys,
                                                          "past_values": values})
        outputs.append(part[0])
    assert keys.shape[3] == one.shape[1]
    assert np.abs(np.concatenate(outputs) - ours[0, :one.shape[1]]).max() < TOLERANCE


def test_onnx_runtime_greedy_replies_equal_ours(finn, onnx_folder, asked):
    onnx_finn = OnnxChat(onnx_folder / "model.onnx", finn)
    for messages in asked:
        assert onnx_greedy_ids(onnx_finn, messages) == our_greedy_ids(finn, messages), messages
    text = "<|end|> 🐟 what is this?"   # markers typed as text, and emoji, as in chapter 6
    assert onnx_finn.reply(text, temperature=0) == finn.reply(text, temperature=0)
    with pytest.raises(ValueError, match="say something"):
        onnx_finn.reply("   ")
    with pytest.raises(ValueError, match="do not fit in the context of"):
        onnx_finn.generate([[finn.end_id] * 100], GREEDY)


def test_banned_tokens_are_never_generated_by_either_export(finn, hf_model, hf_tokenizer, onnx_folder, asked):
    "Ban the token each greedy reply starts with: transformers (suppress_tokens) and ONNX Runtime must avoid it."
    model, tokenizer = hf_model, hf_tokenizer
    assert model.generation_config.suppress_tokens == finn.banned_ids
    onnx_finn = OnnxChat(onnx_folder / "model.onnx", finn)
    for messages in asked[:4]:
        banned = finn.banned_ids + our_greedy_ids(finn, messages)[:1]
        ours = our_greedy_ids(finn, messages, banned)
        assert ours[0] != banned[-1]
        assert hf_greedy_ids(model, tokenizer, messages, suppress_tokens=banned) == ours
        onnx_finn.banned_ids = banned
        assert onnx_greedy_ids(onnx_finn, messages) == ours


def test_the_onnx_folder_says_what_a_generation_loop_needs(finn, onnx_folder):
    from tokenizers import Tokenizer as RustTokenizer

    settings = json.loads((onnx_folder / "chat.json").read_text())
    assert settings["end_id"] == finn.end_id and settings["banned_ids"] == finn.banned_ids
    assert settings["inputs"] == ["input_ids", "past_keys", "past_values"]
    rust = RustTokenizer.from_file(str(onnx_folder / "tokenizer.json"))
    text = "do you like the rain? i think 12345 fish are hungry!"
    assert rust.encode(text, add_special_tokens=False).ids == finn.tok.encode(text)


# ---------------------------------------------------------------- a run trained here, and the web page's data

def test_a_run_trained_here_exports_to_all_three(tmp_path, tiny_run_dir):
    tiny = load(tiny_run_dir, device="cpu")
    assert tiny.model.config.vocab_size > len(tiny.tok)   # ids beyond the tokenizer: banned everywhere
    hf = transformers.AutoModelForCausalLM.from_pretrained(export_hf(tiny_run_dir, tmp_path / "hf")).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    onnx_tiny = OnnxChat(export_onnx(tiny_run_dir, tmp_path / "onnx") / "model.onnx", tiny)
    for text in ["are you hungry?", "hello finn", "WHAT IS THE MEANING OF LIFE?", "é 🐟"]:
        messages = [{"role": "user", "content": text}]
        ours = our_greedy_ids(tiny, messages)
        assert hf_greedy_ids(hf, hf_tok, messages) == ours
        assert onnx_greedy_ids(onnx_tiny, messages) == ours
    data = web_model_data(tiny_run_dir)
    assert page_weights(data) == {k: v.tolist() for k, v in int8_weights(tiny.model).items()}
    assert data["config"] == tiny.model.config.to_dict()
    steering = load_safetensors(base64.b64decode(data["steering"]["safetensors"]))   # chapter 7's, where it steers
    assert data["steering"]["after"] == STEER_AFTER and data["steering"]["topic"] == "food"
    assert {topic: vector.tolist() for topic, vector in steering.items()} == \
        {topic: direction[STEER_AFTER].tolist() for topic, direction in run_directions(tiny_run_dir).items()}


def page_weights(data: dict) -> dict[str, list]:
    "The tensors a page receives, as lists (to compare exactly)."
    return {name: tensor.tolist() for name, tensor in load_safetensors(base64.b64decode(data["safetensors"])).items()}


def test_int8_rows_round_each_weight_to_the_nearest_step_of_its_row():
    weight = torch.tensor([[0.4, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 2.9, -0.001]])
    q, scale = quantize_rows(weight)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32 and scale.tolist()[1] == 1.0   # a zero row
    assert q.abs().amax(dim=1).tolist() == [127, 0, 127] and q[0].tolist() == [51, -127, 32]
    assert ((q.float() * scale[:, None] - weight).abs() <= scale[:, None] / 2 + 1e-7).all()


def test_the_page_model_is_the_model_with_rounded_matrices_and_its_own_vectors(finn):
    paged = page_model(finn)
    for (name, ours), (_, theirs) in zip(finn.model.named_parameters(), paged.model.named_parameters()):
        if ours.dim() == 1:
            assert torch.equal(ours, theirs), name
        else:
            assert 0 < (ours - theirs).abs().max() <= ours.abs().max() / 254 + 1e-7, name
    assert paged.model.head.weight is paged.model.token_embedding.weight, "still tied"


def test_the_web_folder_is_the_page_and_the_run(tmp_path, finn):
    folder = export_web("finn-cpu", tmp_path / "web")
    assert sorted(p.name for p in folder.iterdir()) == ["chat.css", "chat.js", "index.html", "model.js"]
    script = (folder / "model.js").read_text()
    prefix = "window.TINYLLM_MODEL = "
    assert script.startswith(prefix) and script.endswith(";\n")
    data = json.loads(script[len(prefix):-2])
    assert data["character"] == "Finn"   # the reference run's files, as the page receives them
    assert data["tokenizer"]["merges"] == [list(pair) for pair in finn.tok.merges]
    assert page_weights(data) == {k: v.tolist() for k, v in int8_weights(finn.model).items()}
    html = (folder / "index.html").read_text()
    assert '<script src="model.js"></script>' in html and "http" not in html   # nothing from elsewhere


# ---------------------------------------------------------------- bad input

def test_an_existing_folder_is_replaced_only_when_forced(tmp_path):
    out = tmp_path / "web"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="--force"):
        export_web("finn-cpu", out)
    assert (out / "mine.txt").read_text() == "keep me"
    export_web("finn-cpu", out, force=True)
    assert not (out / "mine.txt").exists() and (out / "model.js").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(FileExistsError, match="not a folder"):
        export_web("finn-cpu", tmp_path / "file", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "web"]   # no half-written folder left


def test_the_run_itself_is_never_the_output(tmp_path, tiny_run_dir, monkeypatch):
    for out in (tiny_run_dir, tiny_run_dir.parent):   # --force would replace the run, or the folder holding it
        with pytest.raises(ValueError, match="holds the run being exported"):
            export_web(tiny_run_dir, out, force=True)
    monkeypatch.chdir(tiny_run_dir)
    with pytest.raises(ValueError, match="holds the run being exported"):
        export_web(".", ".", force=True)
    assert (tiny_run_dir / "model.safetensors").is_file()


@pytest.mark.parametrize("export", [export_hf, export_onnx, export_web])
def test_a_folder_that_is_not_a_run_is_refused_before_anything_is_written(tmp_path, export):
    (tmp_path / "notes").mkdir()
    with pytest.raises(FileNotFoundError, match="not a complete run"):
        export(tmp_path / "notes", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no run directory"):
        export(tmp_path / "missing", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_a_missing_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)   # as if not installed: importing it raises ImportError
    with pytest.raises(ModuleNotFoundError, match=r"needs the onnxscript package: pip install 'tinyllm\[export\]'"):
        export_onnx("finn-cpu", tmp_path / "onnx")
    assert not list(tmp_path.iterdir())
    assert require("json", "anything") is json


@pytest.mark.slow
def test_cli_exports(tmp_path, capsys):
    "As a user runs it: a fresh process for --to hf, whose folder loads in transformers; then the other two."
    result = run_tinyllm("export", "finn-cpu", "--to", "hf", str(tmp_path / "hf"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {tmp_path / 'hf'} in ") and "model.safetensors" in result.stdout
    assert transformers.AutoConfig.from_pretrained(tmp_path / "hf").activation_function == "relu"
    for form, made in [("onnx", "model.onnx"), ("web", "model.js")]:
        assert main(["export", "finn-cpu", "--to", form, str(tmp_path / form)]) == 0
        assert made in capsys.readouterr().out and (tmp_path / form / made).is_file()


@pytest.mark.slow
@pytest.mark.parametrize("args, code, message", [
    (["finn", "--to", "tflite", "{out}"], 2, "invalid choice: 'tflite'"),
    (["finn", "--to", "web", "{existing}"], 1, "already exists: choose another folder, or pass --force to replace it"),
    (["{nothing}", "--to", "hf", "{out}"], 1, "no run directory at"),
    (["finn", "--to", "onnx", "{out}"], 1, "exporting to ONNX needs the onnxscript package: pip install 'tinyllm[export]'"),
])
def test_cli_refuses_bad_input_in_one_line(tmp_path, capsys, monkeypatch, args, code, message):
    (tmp_path / "existing").mkdir()
    monkeypatch.setitem(sys.modules, "onnxscript", None)   # as if not installed
    paths = {name: str(tmp_path / name) for name in ("out", "existing", "nothing")}
    try:
        returned = main(["export", *(arg.format(**paths) for arg in args)])
    except SystemExit as stop:   # argparse's own errors
        returned = stop.code
    err = capsys.readouterr().err
    assert returned == code and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]   # nothing written


def test_quiet_hides_the_exporters_chatter_and_nothing_else(capsys):
    "An exporter's progress lines and warnings go; a warning of anyone else's still reaches the user."
    exporter = str(Path(torch.__file__).parent / "onnx" / "_internal" / "exporter.py")
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with quiet():
            print("[torch.onnx] Obtain model graph... done")
            warnings.warn_explicit("torchvision is not installed", UserWarning, exporter, 1)
            warnings.warn("the message is 300 tokens long", UserWarning)
    assert [str(w.message) for w in shown] == ["the message is 300 tokens long"]
    assert capsys.readouterr().out == ""

