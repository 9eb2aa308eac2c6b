"""Chapter 6: tokens per second of generation with the KV cache, without it, and a naive baseline.

All three generate 64 new tokens after a 16-token prompt, sampling (T = 0.7, top-k 40) with
the same seed, on models with the `cpu` and `t4` presets' shapes (random weights: speed does
not depend on what the model knows; no stop token, so every run makes all 64 tokens).

- cached: `generate_ids` (chapter 6's `decode` with `model_step`), which feeds one new token per step and keeps
  keys and values;
- uncached: `generate_ids(use_cache=False)`, which runs the whole sequence every step;
- baseline: a loop written the way the original fish model generates: the whole sequence
  every step, a full-vocabulary softmax and top-k by sorting, and `.item()` on each token.

Prints tokens per second and the ratios cached / uncached and cached / baseline.
"""
import torch

from timing import median_time
from tinyllm.generate import Sampling, generate_ids
from tinyllm.model import ModelConfig, TinyLM
from tinyllm.tokenizer import VOCAB_SIZE

NEW_TOKENS, PROMPT_TOKENS, REPEATS = 64, 16, 5


@torch.no_grad()
def baseline(model: TinyLM, prompt: list[int], seed: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.tensor([prompt])
    for _ in range(NEW_TOKENS):
        logits = model(ids[:, -model.config.context_length:])[0][:, -1, :] / 0.7
        values, _ = torch.sort(logits, descending=True)
        logits[logits < values[:, 39:40]] = float("-inf")
        token = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)
        ids = torch.cat([ids, torch.tensor([[token.item()]])], dim=1)
    return ids[0, len(prompt):].tolist()


def main():
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {NEW_TOKENS} new tokens")
    for preset in ("cpu", "t4"):
        torch.manual_seed(0)
        model = TinyLM(ModelConfig.preset(preset, VOCAB_SIZE)).eval()
        prompt = torch.randint(0, VOCAB_SIZE, (PROMPT_TOKENS,)).tolist()
        sample = Sampling(temperature=0.7, top_k=40, top_p=None, max_new_tokens=NEW_TOKENS)   # as the baseline
        runs = {"cached": lambda: list(generate_ids(model, prompt, sample, seed=0)),
                "uncached": lambda: list(generate_ids(model, prompt, sample, seed=0, use_cache=False)),
                "baseline": lambda: baseline(model, prompt, 0)}
        speed = {name: NEW_TOKENS / median_time(fn, REPEATS, warmup=True)[0] for name, fn in runs.items()}
        print(f"{preset:>3} preset: " + ", ".join(f"{name} {s:,.0f} tokens/s" for name, s in speed.items())
              + f" -> cached / uncached = {speed['cached'] / speed['uncached']:.2f}, "
                f"cached / baseline = {speed['cached'] / speed['baseline']:.2f}")


if __name__ == "__main__":
    main()
