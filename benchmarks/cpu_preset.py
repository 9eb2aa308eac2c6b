"""Chapter 5: does the `cpu` preset fit its budget, and how good a Finn does it make?

Times `train_run(preset="cpu")` end to end (data, tokenizer, training, saving) and scores the model
with `greedy_in_character_rate` on up to 300 test prompts whose wording training never saw. The
budget is 300 s on a slow 2-core machine (benchmarks/budget.py); this machine is compared with it by
timing one frozen step on both (`slow_machine_factor`, before and after the run, against the machine's
drift), and the run's time is scaled by that factor. Pass a model shape to try another candidate,
e.g. `--shape 3 192 4 384 --steps 850`, or another batch: `--batch 32 --steps 800`.

    python benchmarks/cpu_preset.py
"""
import argparse
import tempfile
import time
from dataclasses import replace

from tinyllm.data import generate_conversations
from tinyllm.model import ModelConfig
from tinyllm.tokenizer import train_tokenizer
from tinyllm.runs import load_data
from tinyllm.judge import greedy_in_character_rate
from tinyllm.train import TRAIN_PRESETS, Trainer, matmul_gflops, train_run

from budget import BUDGET_SECONDS, slow_machine_factor


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=4, type=int, metavar=("LAYERS", "WIDTH", "HEADS", "FF"))
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch", type=int, help="conversations per step")
    args = parser.parse_args()
    finn = generate_conversations()
    finn_tok = train_tokenizer(finn)
    before, _ = slow_machine_factor(finn_tok, finn)
    start = time.perf_counter()
    if args.shape or args.batch:
        source = {"n": 60_000, "seed": 0}
        data = load_data(source)   # timed as part of the run, as train_run does
        tok = train_tokenizer(data)
        changes = {"steps": args.steps, "batch_size": args.batch}
        config = replace(TRAIN_PRESETS["cpu"], **{k: v for k, v in changes.items() if v})
        model = ModelConfig.preset("cpu", len(tok))
        if args.shape:
            layers, width, heads, ff = args.shape
            model = replace(model, n_layers=layers, d_model=width, n_heads=heads, d_ff=ff)
        trainer = Trainer(model, config, tok, data, device="cpu", data_source=source).fit(progress=False)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = train_run(f"{tmp}/run", preset="cpu", steps=args.steps, device="cpu", progress=False)
        data = finn   # the conversations train_run generated: the same source, so the same rows
    seconds = time.perf_counter() - start
    after, _ = slow_machine_factor(finn_tok, finn)
    factor = (before + after) / 2
    score = greedy_in_character_rate(trainer.model, trainer.tok, data, trainer.character)
    print(f"{trainer.model.num_params() / 1e6:.1f}M parameters, {trainer.step} steps x {trainer.train_config.batch_size}: "
          f"{seconds:.0f} s end to end here ({matmul_gflops():,.0f} GFLOP/s on a large matmul), "
          f"validation loss {trainer.log[-1]['val_loss']:.3f}")
    print(f"the slow machine runs a step {factor:.2f} times slower (measured {before:.2f} before the run, {after:.2f} "
          f"after): about {seconds * factor:.0f} s there, against a budget of {BUDGET_SECONDS} s")
    print(", ".join(f"{k} {v:.0%}" if k != "prompts" else f"{v} prompts" for k, v in score.items()))


if __name__ == "__main__":
    main()
