"""A tiny trained model for the tests: seconds of training on a small data set (hand-written helper)."""
from pathlib import Path

import torch

from tinyllm.character import Character, load_character
from tinyllm.model import ModelConfig
from tinyllm.tokenizer import train_tokenizer
from tinyllm.train import TrainConfig, Trainer

FINN = load_character("finn")


def tiny_trainer(data, shape: dict, steps: int, warmup_steps: int, log_every: int,
                 data_source: dict | None = None, character: Character = FINN) -> Trainer:
    "A Trainer on `character`'s `data` with its own 400-token tokenizer, ready to `fit` (seeded, CPU, one evaluation)."
    tok = train_tokenizer(data, vocab_size=400)
    config = TrainConfig(steps=steps, batch_size=32, lr=3e-3, min_lr=3e-4, warmup_steps=warmup_steps,
                         log_every=log_every, eval_every=steps, eval_conversations=32, checkpoint_every=1_000)
    torch.manual_seed(0)
    return Trainer(ModelConfig(vocab_size=len(tok) + 48, **shape), config, tok, data, device="cpu",
                   data_source=data_source, character=character)


def tiny_run(tmp_path_factory, data, shape: dict, steps: int, warmup_steps: int, log_every: int,
             data_source: dict, character: Character = FINN) -> Path:
    "A run directory (what `python -m tinyllm train` writes) for a tiny_trainer fitted on `data`: for module fixtures."
    out = tmp_path_factory.mktemp("runs") / "tiny"
    tiny_trainer(data, shape, steps, warmup_steps, log_every, data_source, character).fit(out, progress=False)
    return out
