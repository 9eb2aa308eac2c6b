"""A tiny trained model for the tests: seconds of training on a small data set (hand-written helper)."""
import torch

from tinyllm.model import ModelConfig
from tinyllm.tokenizer import train_tokenizer
from tinyllm.train import TrainConfig, Trainer


def tiny_trainer(data, shape: dict, steps: int, warmup_steps: int, log_every: int,
                 data_source: dict | None = None) -> Trainer:
    "A Trainer on `data` with its own 400-token tokenizer, ready to `fit` (seeded, CPU, one evaluation at the end)."
    tok = train_tokenizer(data, vocab_size=400)
    config = TrainConfig(steps=steps, batch_size=32, lr=3e-3, min_lr=3e-4, warmup_steps=warmup_steps,
                         log_every=log_every, eval_every=steps, eval_conversations=32, checkpoint_every=1_000)
    torch.manual_seed(0)
    return Trainer(ModelConfig(vocab_size=len(tok) + 48, **shape), config, tok, data, device="cpu",
                   data_source=data_source)
