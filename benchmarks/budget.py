"""The `cpu` preset's budget, and how a machine is compared with the slow machine it names.

The budget: the whole run (data, tokenizer, training, saving) in under 300 s on a slow 2-core machine, one
whose large float32 matrix product runs at 134 GFLOP/s. A large product's speed does not predict a small
model's training there (it predicted 270 s for a run that took 355 s), so the yardstick is a training run:
on that machine, `python -m tinyllm train --preset cpu` with the recipe frozen here as `YARDSTICK` (900
steps of 32 conversations, the output layer at every position, as its loop then ran it) took 355 s end to
end, 0.377 s a step. A candidate's time on the slow machine is its time here, scaled by the yardstick's:
355 s over the yardstick run's time here, measured in the same session (benchmarks/cpu_curve.py,
benchmarks/cpu_preset.py). `slow_machine_factor` is a quicker, rougher version from a few steps.

    python benchmarks/budget.py     # this machine's quick factor, and the yardstick step's time here
"""
import statistics
import time
from dataclasses import replace

import torch.nn.functional as F

from tinyllm.model import IGNORE_INDEX, ModelConfig, TinyLM
from tinyllm.train import TrainConfig, Trainer

BUDGET_SECONDS = 300         # the cpu preset, end to end, on the slow machine
SLOW_MACHINE_GFLOPS = 134    # its large float32 matmul (matmul_gflops), for the record
SLOW_YARDSTICK_RUN = 355     # seconds, end to end, of the YARDSTICK recipe's run there
SLOW_YARDSTICK_STEP = 0.377  # seconds per step of it there
YARDSTICK = (dict(n_layers=2, d_model=256, n_heads=4, d_ff=512, context_length=128, dropout=0.0),
             TrainConfig(steps=900, batch_size=32, lr=3e-3, min_lr=3e-4, warmup_steps=100))


def every_position_forward(self, ids, targets=None, kv_caches=None):
    "TinyLM.forward as it was before issue 34: in training too, the output layer at every position."
    if targets is None:
        return TinyLM.forward(self, ids, None, kv_caches)
    logits, _ = TinyLM.forward(self, ids)
    return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


def yardstick_trainer(tok, data, seed: int = 0, data_source: dict | None = None) -> Trainer:
    "The yardstick recipe, on the CPU, on `data` (Finn's 60,000 conversations, seed 0, as it was measured)."
    shape, recipe = YARDSTICK
    trainer = Trainer(ModelConfig(vocab_size=64 * -(-len(tok) // 64), **shape), replace(recipe, seed=seed), tok, data,
                      "cpu", data_source)
    trainer.model.forward = every_position_forward.__get__(trainer.model)
    return trainer


def seconds_per_step(trainer: Trainer, steps: int = 8, rounds: int = 3) -> float:
    "Median over `rounds` of the seconds per step of `trainer` (after one warm-up step). It trains the model."
    trainer.train_step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            loss, _ = trainer.train_step()
        loss.item()
        times.append((time.perf_counter() - start) / steps)
    return statistics.median(times)


def slow_machine_factor(tok, data) -> tuple[float, float]:
    """Roughly how many times slower the slow machine is than this one, from a few steps of the yardstick (its
    first batches, without the run's evaluations: about a tenth under the factor its whole run gives);
    and the yardstick's step here."""
    here = seconds_per_step(yardstick_trainer(tok, data))
    return SLOW_YARDSTICK_STEP / here, here


if __name__ == "__main__":
    from tinyllm.data import generate_conversations
    from tinyllm.tokenizer import train_tokenizer
    from tinyllm.train import matmul_gflops

    data = generate_conversations()
    tok = train_tokenizer(data)
    factor, here = slow_machine_factor(tok, data)
    gflops = matmul_gflops()
    print(f"this machine: {gflops:.0f} GFLOP/s on a large matmul; the yardstick step takes {here * 1e3:.0f} ms "
          f"here and {SLOW_YARDSTICK_STEP * 1e3:.0f} ms on the slow machine: {factor:.2f} times slower "
          f"(the matmul rates alone would say {gflops / SLOW_MACHINE_GFLOPS:.2f})")
