"""Chapter 5: where the time of one `cpu` training step goes, and what the framework offers.

Part 1, the profile: the preset's own steps (Trainer.train_step's work, on the preset's batches), timed
part by part with module hooks. On a CPU every operation finishes before the next starts, so the
wall-clock time between a module's pre-hook and its hook is that module's time, forward and backward.
What no module owns (the residual adds, the loss, autograd's own work) is "glue".

Part 2, the options, each timed in the same run against today's step (seconds per step, and the
ratio): the output layer at every position, as before TinyLM.forward ran it only where a target
carries a loss (both losses of one batch printed first);
AdamW's foreach and fused implementations; torch.compile (its first step, where it compiles, printed
apart); and half the threads. The machine's speed drifts, so each option runs in rounds that alternate
with today's step, and the medians are compared. With --write, both parts
are stored in tinyllm/reference/cpu_step.json, which chapter 5 shows (`make reference` does this).

    python benchmarks/train_step.py [--steps 20] [--threads N] [--write]
"""
import argparse
import json
import math
import platform
import statistics
import time
import warnings
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict

import torch

from tinyllm.data import generate_conversations
from tinyllm.model import IGNORE_INDEX, ModelConfig, TinyLM
from tinyllm.tokenizer import train_tokenizer
from tinyllm.runs import REFERENCE_RUNS
from tinyllm.train import TRAIN_PRESETS, Trainer, collate, learning_rate, matmul_gflops

from budget import every_position_forward


def part_of(name: str) -> str | None:
    "The profile's row for a module name, or None for containers."
    if name in ("token_embedding", "position_embedding"):
        return "embeddings"
    if name == "head":
        return "output layer"
    if name.endswith(".attention"):
        return "attention"
    if name.endswith(".feed_forward"):
        return "feed-forward"
    if name.endswith("norm1") or name.endswith("norm2") or name == "final_norm":
        return "layer norms"
    return None


class Clock:
    "Wall-clock seconds per part, forward and backward, from module hooks (the CPU runs one op at a time)."

    def __init__(self, model: TinyLM):
        self.seconds, self.started = defaultdict(float), {}
        for name, module in model.named_modules():
            if part := part_of(name):
                module.register_forward_pre_hook(self.start(("forward", part, name)))
                module.register_forward_hook(self.stop(("forward", part, name)))
                module.register_full_backward_pre_hook(self.start(("backward", part, name)))
                module.register_full_backward_hook(self.stop(("backward", part, name)))
        self.on = False

    def start(self, key):
        def hook(*_):
            if self.on:
                self.started[key] = time.perf_counter()
        return hook

    def stop(self, key):
        def hook(*_):
            if self.on and key in self.started:
                self.seconds[key[:2]] += time.perf_counter() - self.started.pop(key)
        return hook

    @contextmanager
    def timing(self, key):
        start = time.perf_counter()
        yield
        if self.on:
            self.seconds[key] += time.perf_counter() - start


def profile(trainer: Trainer, steps: int) -> dict:
    "Seconds per step by part, over `steps` steps of the preset's own batches (after two warm-up steps)."
    clock = Clock(trainer.model)
    config = trainer.train_config
    for step in range(steps + 2):
        clock.on = step >= 2
        begin = time.perf_counter()
        with clock.timing(("python", "batch and collation")):
            inputs, targets = collate(trainer.batch(trainer.step), trainer.pad, config.reply_only)
        for group in trainer.optimizer.param_groups:
            group["lr"] = learning_rate(trainer.step, config)
        with clock.timing(("forward", "total")):
            loss = trainer.loss(inputs, targets)
        with clock.timing(("backward", "total")), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Full backward hook")   # the embeddings' inputs are ids: no gradient
            loss.backward()
        with clock.timing(("optimizer", "clip the gradient norm")):
            torch.nn.utils.clip_grad_norm_(trainer.model.parameters(), config.grad_clip)
        with clock.timing(("optimizer", "AdamW step")):
            trainer.optimizer.step()
            trainer.optimizer.zero_grad(set_to_none=True)
        trainer.step += 1
        if clock.on:
            clock.seconds[("step", "total")] += time.perf_counter() - begin
    table = {key: value / steps for key, value in clock.seconds.items()}
    for phase in ("forward", "backward"):
        owned = sum(v for (p, part), v in table.items() if p == phase and part != "total")
        table[(phase, "glue (residual adds, loss, autograd)")] = table.pop((phase, "total")) - owned
    accounted = sum(v for (p, _), v in table.items() if p != "step")
    table[("python", "the rest of the loop")] = table[("step", "total")] - accounted
    return table


def compare(base: Trainer, changed: Trainer, steps: int, rounds: int = 5, threads: int | None = None):
    """Median seconds per step of `base` and of `changed` (on `threads` threads if given), measured in
    alternating rounds of `steps` steps, so that the machine's drift hits both alike; and the seconds of
    `changed`'s first step (torch.compile compiles there)."""
    def per_step(trainer: Trainer, n: int, threads: int | None = None) -> float:
        before = torch.get_num_threads()
        torch.set_num_threads(threads or before)
        start = time.perf_counter()
        for _ in range(n):
            trainer.train_step()
        torch.set_num_threads(before)
        return (time.perf_counter() - start) / n

    per_step(base, 2)
    first = per_step(changed, 1, threads)
    per_step(changed, 1, threads)
    times = [(per_step(base, steps), per_step(changed, steps, threads)) for _ in range(rounds)]
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times), first


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--write", action="store_true", help="store the result for chapter 5 (make reference does)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = TRAIN_PRESETS["cpu"]
    data = generate_conversations(n=preset.n_conversations, seed=0)
    tok = train_tokenizer(data)
    model_config = ModelConfig.preset("cpu", len(tok))

    def trainer() -> Trainer:
        return Trainer(model_config, preset, tok, data, "cpu")

    gflops = matmul_gflops()
    print(f"{torch.get_num_threads()} threads, {gflops:.0f} GFLOP/s on a large float32 matrix product")
    one = trainer()
    n_batches = math.ceil(len(one.train_examples) / preset.batch_size)
    epoch = [collate(one.batch(step), one.pad, preset.reply_only)[1] for step in range(n_batches)]
    share = sum(int((t != IGNORE_INDEX).sum()) for t in epoch) / sum(t.numel() for t in epoch)
    print(f"an epoch of {len(epoch)} batches: {share:.1%} of positions carry a loss")
    inputs, targets = collate(one.batch(0), one.pad, preset.reply_only)
    full, scored = every_position_forward(one.model, inputs, targets)[1], one.model(inputs, targets)[1]
    print(f"loss of the first batch, output layer everywhere / only at loss positions: {full:.6f} / {scored:.6f}")

    table = profile(one, args.steps)
    total = table[("step", "total")]
    print(f"\none step of the cpu preset: {total * 1e3:.0f} ms")
    for (phase, part), seconds in sorted(table.items(), key=lambda kv: -kv[1]):
        if phase != "step":
            print(f"  {phase:9} {part:40} {seconds * 1e3:7.1f} ms  {seconds / total:5.1%}")

    print(f"\nmedian seconds per step over 5 rounds of {args.steps} steps, each against today's step in "
          "alternating rounds:")

    def adamw(t: Trainer, **how) -> torch.optim.AdamW:   # make_optimizer's groups, another implementation
        groups = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in t.optimizer.param_groups]
        return torch.optim.AdamW(groups, lr=preset.lr, betas=(0.9, 0.95), **how)

    def compiled(t: Trainer):
        t.model = torch.compile(t.model, dynamic=True)   # batch lengths vary: one graph for all of them

    threads = torch.get_num_threads()
    options = {
        "output layer at every position (before)": lambda t: setattr(t.model, "forward",
                                                                     every_position_forward.__get__(t.model)),
        "AdamW foreach": lambda t: setattr(t, "optimizer", adamw(t, foreach=True)),
        "AdamW fused": lambda t: setattr(t, "optimizer", adamw(t, fused=True)),
        "torch.compile (dynamic shapes)": compiled,
        f"{max(1, threads // 2)} thread(s) instead of {threads}": None,
    }
    measured = []
    for name, change in options.items():
        changed = trainer()
        try:
            if change:
                change(changed)
            base, new, first = compare(trainer(), changed, args.steps, threads=None if change else max(1, threads // 2))
        except Exception as error:   # e.g. torch.compile without a C++ compiler: say so, and go on
            print(f"  {name:40} failed here: {type(error).__name__}: {str(error).strip().splitlines()[0][:100]}")
            continue
        print(f"  {name:40} {new * 1e3:6.0f} ms against {base * 1e3:4.0f} ms: {base / new:.2f}x"
              f"{f', its first step {first:.0f} s' if first > 1 else ''}")
        measured.append({"option": name, "ms": round(new * 1e3, 1), "today_ms": round(base * 1e3, 1),
                         "speedup": round(base / new, 3), "first_step_s": round(first, 2)})
    record = {"recipe": asdict(preset), "model": asdict(model_config), "machine_gflops": round(gflops),
              "machine": f"{platform.machine()}, {threads} threads, torch {torch.__version__.split('+')[0]}",
              "loss_share": round(share, 4), "step_ms": round(total * 1e3, 1),
              "parts": [{"phase": phase, "part": part, "ms": round(seconds * 1e3, 2)}
                        for (phase, part), seconds in sorted(table.items(), key=lambda kv: -kv[1]) if phase != "step"],
              "options": measured}
    if args.write:
        (REFERENCE_RUNS / "cpu_step.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {REFERENCE_RUNS / 'cpu_step.json'}")


if __name__ == "__main__":
    main()
