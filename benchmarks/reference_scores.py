"""The persona targets of a reference run (or any run of Finn), measured as chapter 5's curve measures them.

Greedy replies judged by chapter 5's judge, exactly as benchmarks/cpu_curve.py scores each of its points:
on the held-out wordings of the test split (`greedy_in_character_rate`, with the share of distinct
replies) and on the hand-written questions training never saw (chapter 8's `fresh_prompts`), alone and
after two earlier exchanges of training conversations. The design note's targets for the `t4` recipe:
at least 90% in character on new wordings and hand-written questions, replies at least 60% distinct,
and within 5 points of that after two earlier exchanges.

    python benchmarks/reference_scores.py                 # finn and finn-cpu, a few minutes on two cores
    python benchmarks/reference_scores.py runs/t4         # your own run
"""
import argparse

from cpu_curve import FINN, hand_written_rates
from tinyllm.generate import load
from tinyllm.judge import greedy_in_character_rate
from tinyllm.runs import load_data, read_run_config, run_path


def scores(run: str) -> dict:
    "Greedy in-character rates of a run of Finn: held-out wordings, hand-written alone and after two exchanges."
    chat = load(run, device="cpu")
    data = load_data(read_run_config(run_path(run))["data"])
    held_out = greedy_in_character_rate(chat.model, chat.tok, data, FINN)
    alone, after_two = hand_written_rates(chat, data)
    return {"parameters": chat.model.num_params(), "held_out": held_out["in_character"],
            "distinct": held_out["distinct_replies"], "hand_written": alone, "after_two": after_two}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=["finn", "finn-cpu"], help="run folders or reference names")
    for run in parser.parse_args().runs:
        s = scores(run)
        print(f"{run}: {s['parameters']:,} parameters; in character (greedy): held-out wordings {s['held_out']:.1%}, "
              f"hand-written {s['hand_written']:.1%}, after two exchanges {s['after_two']:.1%}; "
              f"distinct replies {s['distinct']:.1%}")


if __name__ == "__main__":
    main()
