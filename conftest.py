"""pytest configuration shared by the unit tests and nbval (hand-written).

- Nothing may download at test time: the Hugging Face libraries run offline.
- nbval: stderr (progress bars, warnings) is not compared; it holds timings.
"""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("stderr",)
