"""Chapter 3: PyTorch's fused SDPA against our hand-written attention, same inputs, same run.

Times the forward pass of `CausalSelfAttention` (the `t4` preset's width: 384, 6 heads) with
`return_weights=True` (our path: scores, mask, softmax, weighted sum) and without it (SDPA),
for several batch sizes at a context of 128 tokens, and prints the ratio hand / SDPA.
"""
import torch

from tinyllm.attention import CausalSelfAttention
from timing import median_time

REPEATS = 30


def median_seconds(fn) -> float:
    return median_time(fn, REPEATS, warmup=True)[0]


def main():
    torch.manual_seed(0)
    attn = CausalSelfAttention(384, 6).eval()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    with torch.no_grad():
        for batch in (1, 8, 32):
            x = torch.randn(batch, 128, 384)
            hand = median_seconds(lambda: attn(x, return_weights=True))
            sdpa = median_seconds(lambda: attn(x))
            print(f"batch {batch:>2} x 128 tokens: by hand {hand * 1e3:7.2f} ms, SDPA {sdpa * 1e3:7.2f} ms "
                  f"-> hand / SDPA = {hand / sdpa:.2f}")


if __name__ == "__main__":
    main()
