"""Device correctness where CI has no GPU (hand-written).

On a GPU (Colab's T4) or Apple's MPS the model lives on that device, and two mistakes stop a
chapter there while passing on a CPU: feeding the model a tensor created on the CPU, and calling
`.numpy()` on a tensor that may live on the device. CI has only a CPU, so these checks look for
the mistakes themselves: in the chapters' code (an AST check of chapters 6 to 9, which fails on the
chapter 6 that loaded the model on the GPU and fed it CPU tensors), and in what the library creates
while it runs (every tensor it makes must name its device).
"""
import ast
import json
import traceback
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import tinyllm
from book_pages import ROOT
from tinyllm.data import generate_conversations, unseen_questions
from tinyllm.evaluate import held_out_loss, sample_replies
from tinyllm.generate import ChatModel, Sampling, generate_ids
from tinyllm.interpret import ablate, attention_maps, components, embedding_projection, logit_lens, trace
from tinyllm.judge import preview_reply
from tinyllm.train import encode_conversations, reply_loss
from tiny_runs import tiny_trainer

FACTORIES = {"tensor", "as_tensor", "arange", "zeros", "ones", "full", "empty", "rand", "randn", "randint"}
LIBRARY = Path(tinyllm.__file__).parent


def code_cells(chapter):
    "(cell number, source) of a chapter's code cells, IPython magics blanked out."
    cells = json.loads(chapter.read_text())["cells"]
    for number, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            yield number, "\n".join(line.replace(line.lstrip(), "pass") if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def is_factory_without_device(node) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"
            and not any(k.arg == "device" for k in node.keywords))


def calls_a_model(node) -> bool:
    "model(...), self.model(...), chat.model(...): a call of something named model."
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "model") or (isinstance(func, ast.Attribute) and func.attr == "model")


def device_mistakes(source: str) -> list[str]:
    "Model inputs created without the model's device, and .numpy() on a tensor not moved to the CPU first."
    mistakes = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        if calls_a_model(node):
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                mistakes += [f"line {inner.lineno}: model input {ast.unparse(inner)} has no device="
                             for inner in ast.walk(argument) if is_factory_without_device(inner)]
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "numpy":
            receiver = func.value
            if not (isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute)
                    and receiver.func.attr == "cpu"):
                mistakes.append(f"line {node.lineno}: {ast.unparse(node)} without .cpu() first")
    return mistakes


CHAPTERS = sorted((ROOT / "chapters").glob("0[6-9]_*.ipynb"))   # the chapters that load a trained model


@pytest.mark.parametrize("chapter", CHAPTERS, ids=[c.stem for c in CHAPTERS])
def test_chapter_code_keeps_tensors_on_the_models_device(chapter):
    found = [f"cell {number}, {mistake}" for number, source in code_cells(chapter)
             for mistake in device_mistakes(source)]
    assert not found, f"{chapter.name} would fail on a GPU:\n" + "\n".join(found)


def test_the_check_finds_both_mistakes():
    wrong = "logits = model(torch.tensor([ids]))\nvalues = probs.topk(3).values.numpy()\n"
    right = "logits = model(torch.tensor([ids], device=device))\nvalues = probs.topk(3).values.cpu().numpy()\n"
    assert len(device_mistakes(wrong)) == 2 and device_mistakes(right) == []


class DevicelessTensors(TorchFunctionMode):
    "Records where the library creates a tensor without naming its device (on a GPU it would land on the CPU)."

    def __init__(self):
        super().__init__()
        self.found = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", "") in FACTORIES and getattr(func, "__module__", "") == "torch" \
                and kwargs.get("device") is None:
            caller = next((f for f in reversed(traceback.extract_stack()[:-1]) if "/torch/" not in f.filename), None)
            if caller and Path(caller.filename).is_relative_to(LIBRARY):
                self.found.add(f"{Path(caller.filename).name}:{caller.lineno}: {caller.line}")
        return func(*args, **kwargs)


def test_the_library_names_the_device_of_every_tensor_it_makes():
    "What a chapter calls with a trained model: every tensor it creates says which device it belongs on."
    data = generate_conversations(1_000, seed=0)
    trainer = tiny_trainer(data, dict(n_layers=1, d_model=32, n_heads=2, d_ff=64, context_length=128, dropout=0.0),
                           steps=2, warmup_steps=1, log_every=1)
    chat, tok = ChatModel(trainer.model.eval(), trainer.tok), trainer.tok
    ids = chat.prompt_ids([{"role": "user", "content": "are you hungry?"}], 8)
    with DevicelessTensors() as spy:
        list(generate_ids(chat.model, ids, Sampling(max_new_tokens=8), seed=0))
        chat.reply("hi finn", seed=0, max_new_tokens=8)
        chat.conversation().say("hi", seed=0)
        sample_replies(chat, unseen_questions(data, 6), sampling=Sampling(max_new_tokens=8))
        reply_loss(chat.model, tok, encode_conversations(data["test"].select(range(8)).to_dict(), tok))
        held_out_loss(chat, {split: rows.select(range(8)) for split, rows in data.items()})
        preview_reply(chat.model, tok, "hi", max_new_tokens=4)
        trace(chat.model, ids), attention_maps(chat.model, ids), logit_lens(chat.model, ids)
        embedding_projection(chat.model, ids)
        with ablate(chat.model, components(chat.model)[0]):
            chat.model(torch.tensor([ids], device="cpu"))
    assert not spy.found, "tensors made without a device:\n" + "\n".join(sorted(spy.found))
