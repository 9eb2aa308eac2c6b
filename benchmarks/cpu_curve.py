"""Chapter 5: what does the next minute buy? In-character rate against training time for the `cpu` recipe.

Trains the `cpu` preset (its shape, batch, learning rates and seed 0) for a half, one, two and four
times its steps, each a whole run with its own warm-up and cosine, on the CPU, end to end (data,
tokenizer, training). Each run is scored greedily, with chapter 5's judge, on the held-out wordings
(`greedy_in_character_rate`) and on the hand-written questions it never saw (chapter 8's
`fresh_prompts`). Writes the curve to tinyllm/reference/cpu_curve.json, which chapter 5 plots, with
the machine's large-matmul speed and each time scaled to the slowest 2-core machine measured.

    python benchmarks/cpu_curve.py            # about 15 minutes on a 2-core laptop
"""
import json
import platform
import time
from dataclasses import asdict, replace

import torch

from tinyllm.data import FINN, normalize, training_questions
from tinyllm.evaluate import fresh_prompts
from tinyllm.generate import ChatModel
from tinyllm.model import ModelConfig
from tinyllm.tokenizer import train_tokenizer
from tinyllm.train import (REFERENCE_RUNS, SLOWEST_GFLOPS, TRAIN_PRESETS, Trainer, greedy_in_character_rate,
                           in_character, load_data, matmul_gflops, topic_classifier)

MULTIPLES = (0.5, 1, 2, 4)           # of the preset's steps


def hand_written_rate(chat: ChatModel, data) -> float:
    "Greedy replies to the hand-written questions training never saw: share in character."
    classify = topic_classifier(data["train"].to_dict())
    asked = training_questions(data)
    questions = [(q, t) for q, t in fresh_prompts(FINN) if normalize(q) not in asked]
    return sum(in_character(chat.reply(q, temperature=0), t, classify) for q, t in questions) / len(questions)


def main():
    gflops = matmul_gflops()
    recipe, points = TRAIN_PRESETS["cpu"], []
    for multiple in MULTIPLES:
        start = time.perf_counter()
        source = {"n": recipe.n_conversations, "seed": 0}
        data = load_data(source)
        tok = train_tokenizer(data)
        config = replace(recipe, steps=round(recipe.steps * multiple))
        trainer = Trainer(ModelConfig.preset("cpu", len(tok)), config, tok, data, "cpu", source).fit(progress=False)
        seconds = time.perf_counter() - start
        held_out = greedy_in_character_rate(trainer.model, tok, data)["in_character"]
        hand_written = hand_written_rate(ChatModel(trainer.model, tok), data)
        points.append({"steps": config.steps, "seconds": round(seconds, 1),
                       "seconds_at_slowest": round(seconds * gflops / SLOWEST_GFLOPS, 1),
                       "held_out_in_character": round(held_out, 4), "hand_written_in_character": round(hand_written, 4)})
        print(json.dumps(points[-1]), flush=True)
    curve = {"recipe": asdict(recipe), "machine_gflops": round(gflops), "slowest_gflops": SLOWEST_GFLOPS,
             "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__.split('+')[0]}",
             "points": points}
    (REFERENCE_RUNS / "cpu_curve.json").write_text(json.dumps(curve, indent=2) + "\n")
    print(f"wrote {REFERENCE_RUNS / 'cpu_curve.json'}")


if __name__ == "__main__":
    main()
