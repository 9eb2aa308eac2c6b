"""Chapter 5: what does the next minute buy? In-character rate against training time for the `cpu` recipe.

Trains the `cpu` preset (its shape, batch and learning rates) with three seeds, and, alternating with
it, the recipe before it (`budget.YARDSTICK`: 900 steps of 32 conversations, with the output layer at
every position, as its loop ran it) with the same seeds; then the preset for a half and for twice its
steps (seed 0), each a whole run with its own warm-up and cosine. All on the CPU, end to end (data,
tokenizer, training). Each run is scored
greedily with chapter 5's judge: on the held-out wordings (`greedy_in_character_rate`, which also gives
the share of distinct replies) and on the hand-written questions it never saw (chapter 8's
`fresh_prompts`), alone and after two earlier exchanges of training conversations. Each time is also
given on the slow machine of the budget: scaled by the yardstick recipe's runs here against its 355 s
there (benchmarks/budget.py). Writes tinyllm/reference/cpu_curve.json, which chapter 5 plots.

    python benchmarks/cpu_curve.py            # about 25 minutes on a 2-core laptop
"""
import json
import platform
import random
import time
from dataclasses import asdict, replace

import torch

from tinyllm.character import load_character
from tinyllm.data import normalize, training_questions
from tinyllm.evaluate import fresh_prompts
from tinyllm.generate import ChatModel
from tinyllm.model import ModelConfig
from tinyllm.tokenizer import train_tokenizer
from tinyllm.runs import REFERENCE_RUNS, load_data
from tinyllm.judge import greedy_in_character_rate, in_character, topic_classifier
from tinyllm.train import TRAIN_PRESETS, Trainer, matmul_gflops

from budget import BUDGET_SECONDS, SLOW_MACHINE_GFLOPS, SLOW_YARDSTICK_RUN, YARDSTICK, yardstick_trainer

FINN = load_character("finn")

YARDSTICK_NAME = "900 x 32, output layer everywhere"
SEEDS = (0, 1, 2)   # for the preset and the yardstick, whose times decide the budget; half and twice the steps: seed 0


def hand_written_rates(chat: ChatModel, data) -> tuple[float, float]:
    "Greedy replies to the hand-written questions training never saw: share in character, alone and after two exchanges."
    classify = topic_classifier(data["train"].to_dict())
    asked, rows, rng = training_questions(data), data["train"].to_dict(), random.Random(0)
    questions = [(q, t) for q, t in fresh_prompts(FINN) if normalize(q) not in asked]

    def two_exchanges() -> list[dict[str, str]]:
        picks = rng.sample(range(len(rows["input"])), 2)
        return [{"role": role, "content": rows[column][j]} for j in picks
                for role, column in (("user", "input"), ("assistant", "output"))]

    alone = sum(in_character(*chat.answer(q, temperature=0), t, classify, FINN) for q, t in questions)
    after = sum(in_character(*chat.answer(q, temperature=0, history=two_exchanges()), t, classify, FINN)
                for q, t in questions)
    return alone / len(questions), after / len(questions)


def point(recipe_name: str, recipe, seed: int) -> dict:
    "One whole run of the cpu preset's shape with `recipe`, or of the yardstick, end to end, timed and scored."
    start = time.perf_counter()
    source = {"n": recipe.n_conversations, "seed": 0}
    data = load_data(source)
    tok = train_tokenizer(data)
    if recipe_name == YARDSTICK_NAME:
        trainer = yardstick_trainer(tok, data, seed, source)
    else:
        trainer = Trainer(ModelConfig.preset("cpu", len(tok)), replace(recipe, seed=seed), tok, data, "cpu", source)
    trainer.fit(progress=False)
    seconds = time.perf_counter() - start
    held_out = greedy_in_character_rate(trainer.model, tok, data, FINN)
    alone, after_two = hand_written_rates(ChatModel(trainer.model, tok), data)
    return {"recipe": recipe_name, "seed": seed, "steps": recipe.steps, "seconds": round(seconds, 1),
            "held_out_in_character": round(held_out["in_character"], 4),
            "held_out_distinct": round(held_out["distinct_replies"], 4),
            "hand_written_in_character": round(alone, 4), "hand_written_after_two": round(after_two, 4)}


def on_the_slow_machine(points: list[dict]) -> list[dict]:
    "Each run's seconds scaled to the slow machine by the yardstick recipe's runs (the mean of its seeds)."
    yardstick = [p["seconds"] for p in points if p["recipe"] == YARDSTICK_NAME]
    factor = SLOW_YARDSTICK_RUN / (sum(yardstick) / len(yardstick))
    return [p | {"seconds_at_slow_machine": round(p["seconds"] * factor, 1)} for p in points]


def main():
    gflops, recipe, points = matmul_gflops(), TRAIN_PRESETS["cpu"], []
    preset, yardstick = ("cpu", recipe), (YARDSTICK_NAME, YARDSTICK[1])
    # the preset and the yardstick alternate, so that the machine's drift hits both alike
    runs = [(run, seed) for seed in SEEDS for run in (preset, yardstick)]
    runs += [(("cpu", replace(recipe, steps=round(recipe.steps * multiple))), 0) for multiple in (0.5, 2)]
    for (name, config), seed in runs:
        points.append(point(name, config, seed))
        print(json.dumps(points[-1]), flush=True)
    points = on_the_slow_machine(points)
    curve = {"recipe": asdict(recipe), "yardstick_recipe": asdict(YARDSTICK[1]), "machine_gflops": round(gflops),
             "budget_seconds": BUDGET_SECONDS, "slow_machine_gflops": SLOW_MACHINE_GFLOPS,
             "slow_yardstick_run": SLOW_YARDSTICK_RUN,
             "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__.split('+')[0]}",
             "points": points}
    (REFERENCE_RUNS / "cpu_curve.json").write_text(json.dumps(curve, indent=2) + "\n")
    print(f"wrote {REFERENCE_RUNS / 'cpu_curve.json'}")


if __name__ == "__main__":
    main()
