"""Chapter 5: how good a Finn does the `cpu` preset make in five minutes on this machine?

Times `train_run(preset="cpu")` end to end (data, tokenizer, training, saving) and scores
the model with `greedy_in_character_rate` on up to 300 test prompts whose wording training never
saw. Pass a model shape to try another candidate, e.g. `--shape 4 256 4 512 --steps 600`.
Machines differ by 2x and more, so it prints the machine's large-matmul speed (`matmul_gflops`) next
to the time, and the time scaled to the slowest 2-core machine measured (134 GFLOP/s).
"""
import argparse
import tempfile
import time
from dataclasses import replace

from tinyllm.model import ModelConfig
from tinyllm.train import (SLOWEST_GFLOPS, TRAIN_PRESETS, Trainer, greedy_in_character_rate, load_data, matmul_gflops,
                           train_run)
from tinyllm.tokenizer import train_tokenizer



def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", nargs=4, type=int, metavar=("LAYERS", "WIDTH", "HEADS", "FF"))
    parser.add_argument("--steps", type=int)
    args = parser.parse_args()
    gflops = matmul_gflops()
    start = time.perf_counter()
    if args.shape:
        layers, width, heads, ff = args.shape
        source = {"n": 60_000, "seed": 0}
        data = load_data(source)
        tok = train_tokenizer(data)
        config = replace(TRAIN_PRESETS["cpu"], **({"steps": args.steps} if args.steps else {}))
        model = ModelConfig(vocab_size=len(tok), n_layers=layers, d_model=width, n_heads=heads, d_ff=ff, dropout=0.0)
        trainer = Trainer(model, config, tok, data, device="cpu", data_source=source).fit(progress=False)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = train_run(f"{tmp}/run", preset="cpu", steps=args.steps, device="cpu", progress=False)
        data = load_data(trainer.data_source)
    seconds = time.perf_counter() - start
    score = greedy_in_character_rate(trainer.model, trainer.tok, data)
    print(f"{trainer.model.num_params() / 1e6:.1f}M parameters, {trainer.step} steps x {trainer.train_config.batch_size}: "
          f"{seconds:.0f} s end to end, validation loss {trainer.log[-1]['val_loss']:.3f}")
    print(f"this machine: {gflops:,.0f} GFLOP/s (2048x2048 float32 matmul); at {SLOWEST_GFLOPS:.0f} GFLOP/s the run would take "
          f"about {seconds * gflops / SLOWEST_GFLOPS:.0f} s")
    print(", ".join(f"{k} {v:.0%}" if k != "prompts" else f"{v} prompts" for k, v in score.items()))


if __name__ == "__main__":
    main()
