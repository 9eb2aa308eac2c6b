"""pytest configuration shared by the unit tests and nbval (hand-written).

- Nothing may download at test time: the Hugging Face libraries run offline.
- nbval: stderr (progress bars, warnings) is not compared; it holds timings.
- Runs go to $TINYLLM_RUNS, or to a new temporary folder: the chapters start with no runs, as in a fresh
  Colab runtime, and what they train under test never lands in the reader's runs/.
- nbval: the heaviest cells run on smaller budgets than in the book (SMALLER), so that the suite fits a
  slow machine. Their outputs are not compared (NBVAL_IGNORE_OUTPUT) and the findings the text draws from
  them are checked on the values the book stores (tests/test_findings.py); under test every line still runs.
"""
import json
import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TINYLLM_RUNS", tempfile.mkdtemp(prefix="tinyllm-test-runs-"))
CHAPTERS = Path(__file__).parent / "chapters"


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


TEST_SHARE = "{**data, 'test': data['test'].shuffle(seed=0).select(range(600))}"   # chapter 8's data, 600 test rows
SMALLER = {   # chapter: (text in exactly one of its code cells, what runs instead under test)
    "04_transformer": [("steps: int = 300", "steps: int = 30")],             # each rung of the ladder
    "06_generation": [("unseen_questions(data, 120)", "unseen_questions(data, 30)"),   # five settings, sampled
                      ('"do you like the light?", "are you lonely?"]', "]")],             # ten seeds per question
    "07_inside": [('data["test"].select(range(200))', 'data["test"].select(range(40))'),    # 43 ablated models
                  ('if topic != "food"][:50]', 'if topic != "food"][:12]')],                 # steered, 25 ways
    "08_evaluation": [("held_out_loss(finn, data)", f"held_out_loss(finn, {TEST_SHARE})"),   # the loss, and
                      ("evaluate(chat, data, FINN, n_prompts=200, seeds=(0, 1, 2))",      # four models' scores,
                       f"evaluate(chat, {TEST_SHARE}, FINN, n_prompts=60, seeds=(0,))"),   # on a share of the test split
                      ("[\"in_character\"] for seed in (0, 1, 2)]", "[\"in_character\"] for seed in (0,)]"),   # fresh
                      ('"--prompts", "50"', '"--prompts", "10"')],                         # the command line
    "10_shipping": [("unseen_questions(data, 200)", "unseen_questions(data, 40)")],       # the page's int8 model
    "09_your_character": [("FINN), \"mochi (cpu)\": evaluate(mochi, cat_data, MOCHI)",  # Finn and Mochi, scored
                           "FINN, n_prompts=60, seeds=(0, 1)), "
                           "\"mochi (cpu)\": evaluate(mochi, cat_data, MOCHI, n_prompts=60, seeds=(0, 1))"),
                          ("steps: int = 250", "steps: int = 30"),            # short runs of Mochi, scored,
                          ("SEEDS = (0, 1, 2)", "SEEDS = (0, 1)"),             # from two seeds a side, not three
                          ("half, n_prompts=200", "half, n_prompts=40"),
                          ('"--steps", "150"', '"--steps", "50"')],         # Fern, trained from the command line
    "11_many_processes": [('"--steps", "50"', '"--steps", "30"')],            # three timed runs (logged at 25 and 30)
}


def smaller_cell(stem: str, old: str) -> str:
    "The source of the one code cell of chapters/<stem>.ipynb that holds `old`; a usage error if not exactly one."
    path = CHAPTERS / f"{stem}.ipynb"
    cells = json.loads(path.read_text())["cells"] if path.exists() else []
    found = ["".join(c["source"]) for c in cells if c["cell_type"] == "code" and old in "".join(c["source"])]
    if len(found) != 1 or "NBVAL_IGNORE_OUTPUT" not in found[0]:
        raise pytest.UsageError(f"conftest.py: {old!r} is in {len(found)} code cells of {path.name}, not in one "
                                "whose output is ignored (NBVAL_IGNORE_OUTPUT): update SMALLER")
    return found[0]


def pytest_collection_modifyitems(items):
    collected = {(item.path.stem, item.cell.source): item.cell for item in items   # as in the file, before changes
                 if getattr(item, "cell", None) is not None and item.path.parent == CHAPTERS}
    for stem, changes in SMALLER.items():
        for old, new in changes:
            cell = collected.get((stem, smaller_cell(stem, old)))
            if cell is not None:   # the chapter's cell is collected (its copy in assignments/ is left alone)
                cell.source = cell.source.replace(old, new)
