"""Export every chapter's `#| export` cells into the `tinyllm` package (`make export`).

Hand-written; the modules it writes are generated. tests/test_sync.py runs the same
function into a temporary copy and compares, so the library cannot drift from the book.
A chapter writes its module (`#| default_exp model`), and may write more where its ideas
belong apart (`#| export runs` in chapter 5): every module is written afresh each time.
"""
import sys
from pathlib import Path

from nbdev.export import nb_export
from nbdev.maker import ModuleMaker

ROOT = Path(__file__).resolve().parent.parent


class FreshModule(ModuleMaker):
    "nbdev's module maker, always writing the whole module: its own would append to a second module on every export."

    def __init__(self, dest, name, nb_path, is_new=True, **kwargs):
        super().__init__(dest, name, nb_path, is_new=True, **kwargs)


def export_chapters(chapters: Path = ROOT / "chapters", lib: Path = ROOT / "tinyllm") -> list[Path]:
    "Write each chapter's module(s) into `lib`; return the notebooks exported."
    notebooks = sorted(chapters.glob("[0-9][0-9]_*.ipynb"))
    for notebook in notebooks:
        nb_export(str(notebook), lib_path=str(lib), mod_maker=FreshModule)
    return notebooks


if __name__ == "__main__":
    done = export_chapters()
    print(f"exported {len(done)} chapter(s) into tinyllm/", file=sys.stderr)
