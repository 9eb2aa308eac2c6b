"""Chapter 5: our training loop against the loops before it, in tokens per second, in one run.

Part 1, the `cpu` preset: today's loop and recipe (the output layer only where a target carries a loss,
batches of 16) against the loop and recipe before issue 34 (`budget.YARDSTICK`: the output layer at
every position, batches of 32), on the CPU, in alternating rounds so that the machine's drift hits both
alike: loss-carrying tokens per second, and seconds per step.

Part 2, useful (non-padding) tokens per second of our loop against the original fish model's way.

Both loops train the original fish model's shape (6 layers x 384, 6 heads, feed-forward 768,
context 128) with batches of 32 conversations from the same data, on the same device, in
the same run. The baseline is written the way the original loop works:

- random batches, each padded to its longest conversation;
- the loss on every token;
- attention computed by hand with a causal mask built again at every step;
- `loss.item()` after every step (the host waits for the device each time).

Ours is `tinyllm.train.Trainer.train_step`: length-bucketed batches, the loss on replies,
PyTorch's fused attention, no per-step synchronisation (and fp16 + fused AdamW on CUDA).
The ratio ours / baseline is printed (the goal was at least 3x on CPU), together with how
much of the device's large-matmul speed each loop reaches: no loop can beat 100%, which
bounds the ratio any loop can reach against the baseline on that device.
"""
import math
import random
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from tinyllm.data import generate_conversations
from tinyllm.model import ModelConfig, TinyLM, flops_per_token
from tinyllm.tokenizer import train_tokenizer
from tinyllm.runs import pick_device
from tinyllm.train import TRAIN_PRESETS, Trainer, collate, matmul_gflops

from budget import yardstick_trainer

BATCH = 32
# (timed steps, warm-up steps): a GPU needs longer to see every batch shape once (kernel plans are built per shape)
STEPS = {"cpu": (20, 3), "cuda": (300, 100), "mps": (100, 20)}


def baseline_attention(self, x, kv_cache=None, return_weights=False):
    "The original's attention: scores, a freshly built mask, softmax, weighted sum."
    batch, length, _ = x.shape
    q, k, v = map(self.split_heads, self.qkv(x).chunk(3, dim=-1))
    mask = torch.tril(torch.ones(length, length, device=x.device)).view(1, 1, length, length)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
    weights = F.softmax(scores.masked_fill(mask == 0, float("-inf")), dim=-1)
    return self.proj(self.merge_heads(weights @ v))


def tokens_per_second(step, device: torch.device) -> float:
    "Useful tokens per second of `step()` (which trains one batch and returns its useful tokens)."
    steps, warmup = STEPS[device.type]
    for _ in range(warmup):
        step()
    synchronize(device)
    start, useful = time.perf_counter(), 0
    for _ in range(steps):
        useful += step()
    synchronize(device)
    return useful / (time.perf_counter() - start)


def synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def baseline_step_function(trainer: Trainer, device: torch.device):
    "One step of the original's loop, on its own copy of the model."
    torch.manual_seed(0)
    model = TinyLM(trainer.model.config).to(device)
    for block in model.blocks:
        block.attention.forward = baseline_attention.__get__(block.attention)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = random.Random(0)

    def step() -> int:
        batch = rng.sample(trainer.train_examples, BATCH)
        inputs, targets = collate(batch, trainer.pad, reply_only=False)
        _, loss = model(inputs.to(device), targets.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()                                   # the per-step synchronisation
        return sum(len(e.ids) - 1 for e in batch)
    return step


def ours_step_function(trainer: Trainer):
    def step() -> int:
        useful = sum(len(e.ids) - 1 for e in trainer.batch(trainer.step))
        trainer.train_step()
        return useful
    return step


def loss_tokens_and_seconds(trainer: Trainer, steps: int) -> tuple[int, float]:
    "Loss-carrying tokens and seconds of `steps` steps of trainer's own loop."
    start, tokens = time.perf_counter(), 0
    for _ in range(steps):
        loss, n = trainer.train_step()
        tokens += n
    loss.item()
    return tokens, time.perf_counter() - start


def old_and_new_cpu_loop(tok, data, steps: int = 20, rounds: int = 5):
    "Part 1: the cpu preset's loop before issue 34 and today's, side by side."
    loops = {"before (every position, batch 32)": yardstick_trainer(tok, data),
             "today (loss positions only, batch 16)": Trainer(ModelConfig.preset("cpu", len(tok)), TRAIN_PRESETS["cpu"],
                                                              tok, data, "cpu")}
    totals = {name: [0, 0.0, 0] for name in loops}   # tokens, seconds, steps
    for trainer in loops.values():
        loss_tokens_and_seconds(trainer, 2)   # warm-up
    for _ in range(rounds):
        for name, trainer in loops.items():
            tokens, seconds = loss_tokens_and_seconds(trainer, steps)
            totals[name] = [totals[name][0] + tokens, totals[name][1] + seconds, totals[name][2] + steps]
    print(f"cpu preset, {torch.get_num_threads()} CPU threads, {rounds} alternating rounds of {steps} steps:")
    rates = {}
    for name, (tokens, seconds, n) in totals.items():
        rates[name] = tokens / seconds
        print(f"  {name:38} {tokens / seconds:8,.0f} loss-carrying tokens/s, {seconds / n:.3f} s per step")
    before, today = rates.values()
    print(f"  today / before: {today / before:.2f}x the loss-carrying tokens per second")


def main():
    data = generate_conversations()
    tok = train_tokenizer(data)
    old_and_new_cpu_loop(tok, data)
    devices = [torch.device("cpu")] + ([pick_device()] if pick_device().type != "cpu" else [])
    for device in devices:
        config = replace(TRAIN_PRESETS["t4"], batch_size=BATCH, warmup_steps=10)
        trainer = Trainer(ModelConfig.preset("t4", len(tok)), config, tok, data, device=device.type)
        ours = tokens_per_second(ours_step_function(trainer), device)
        baseline = tokens_per_second(baseline_step_function(trainer, device), device)
        peak, per_token = matmul_gflops(device.type) * 1e9, flops_per_token(trainer.model.config)
        print(f"{device.type}: ours {ours:,.0f} useful tokens/s, baseline {baseline:,.0f} -> "
              f"ratio {ours / baseline:.2f} ({torch.get_num_threads()} CPU threads)")
        print(f"  model FLOP/s as a share of a large float32 matmul ({peak / 1e9:,.0f} GFLOP/s): "
              f"ours {ours * per_token / peak:.0%}, baseline {baseline * per_token / peak:.0%}")


if __name__ == "__main__":
    main()
