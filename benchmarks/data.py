"""Chapter 1's budget: generating 60,000 conversations takes under 3 s on a 2-core CPU.

Prints the median time of `generate_conversations(60_000)` and, measured in the same run, two
baselines: the cost of only putting the finished rows into a `DatasetDict` (the part
we do not control), and a bare loop drawing the same number of random template
choices (the least any generator has to do).
"""
import random

from datasets import Dataset, DatasetDict

from tinyllm.character import load_character
from tinyllm.data import generate_conversations
from timing import median_time

FINN = load_character("finn")

N, REPEATS, BUDGET_S = 60_000, 5, 3.0


def median_seconds(fn) -> float:
    return median_time(fn, REPEATS)[0]


def bare_choices():
    rng = random.Random(0)
    topics = FINN.topics
    for _ in range(N):
        t = rng.choice(topics)
        rng.choice(t.asks), rng.choice(t.replies)


def main():
    data = generate_conversations(N)
    columns = {split: ds.to_dict() for split, ds in data.items()}
    ours = median_seconds(lambda: generate_conversations(N))
    container = median_seconds(lambda: DatasetDict({s: Dataset.from_dict(c) for s, c in columns.items()}))
    bare = median_seconds(bare_choices)
    print(f"generate_conversations({N:,}): {ours:.3f} s  (budget {BUDGET_S:.0f} s: {ours / BUDGET_S:.2f} of it)")
    print(f"  baseline, DatasetDict from finished rows: {container:.3f} s -> the generator is {ours / container:.1f}x")
    print(f"  baseline, bare random template choices:   {bare:.3f} s -> the generator is {ours / bare:.1f}x")
    print("within budget" if ours < BUDGET_S else "OVER BUDGET")


if __name__ == "__main__":
    main()
