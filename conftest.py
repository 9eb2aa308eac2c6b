"""pytest configuration shared by the unit tests and nbval (hand-written).

- Nothing may download at test time: the Hugging Face libraries run offline.
- nbval: stderr (progress bars, warnings) is not compared; it holds timings.
- nbval: the heaviest cells run on smaller budgets than in the book (SMALLER), so that the suite fits a
  slow machine. Their outputs are not compared (NBVAL_IGNORE_OUTPUT) and the findings the text draws from
  them are checked on the values the book stores (tests/test_findings.py); under test every line still runs.
"""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)


SMALLER = {   # chapter: (text in exactly one of its code cells, what runs instead under test)
    "04_transformer": [("steps: int = 300", "steps: int = 30")],             # each rung of the ladder
    "08_evaluation": [("n_prompts=200, seeds=(0, 1, 2)", "n_prompts=60, seeds=(0, 1)")],   # three models' scores
    "09_your_character": [("FINN), \"mochi (cpu)\": evaluate(mochi, cat_data, MOCHI)",  # Finn and Mochi, scored
                           "FINN, 60, (0, 1)), \"mochi (cpu)\": evaluate(mochi, cat_data, MOCHI, 60, (0, 1))"),
                          ("steps: int = 250", "steps: int = 30"),            # two short runs of Mochi, scored
                          ("half, n_prompts=200", "half, n_prompts=40"),
                          ('"--steps", "150"', '"--steps", "50"')],         # Fern, trained from the command line
    "11_many_processes": [('"--steps", "50"', '"--steps", "30"')],            # three timed runs (logged at 25 and 30)
}


def pytest_collection_modifyitems(items):
    cells = {}
    for item in items:
        if item.path.suffix == ".ipynb" and hasattr(item, "cell"):
            cells.setdefault(item.path.stem, []).append(item.cell)
    for stem, changes in SMALLER.items():
        for old, new in changes if stem in cells else []:
            found = [cell for cell in cells[stem] if old in cell.source]
            if len(found) != 1:
                raise pytest.UsageError(f"conftest.py: {old!r} is in {len(found)} code cells of {stem}, not one: "
                                        "update SMALLER")
            found[0].source = found[0].source.replace(old, new)
