"""Export every chapter's `#| export` cells into the `tinyllm` package (`make export`).

Hand-written; the modules it writes are generated. tests/test_sync.py runs the same
function into a temporary copy and compares, so the library cannot drift from the book.
"""
import sys
from pathlib import Path

from nbdev.export import nb_export

ROOT = Path(__file__).resolve().parent.parent


def export_chapters(chapters: Path = ROOT / "chapters", lib: Path = ROOT / "tinyllm") -> list[Path]:
    "Write one module per chapter into `lib`; return the notebooks exported."
    notebooks = sorted(chapters.glob("[0-9][0-9]_*.ipynb"))
    for notebook in notebooks:
        nb_export(str(notebook), lib_path=str(lib))
    return notebooks


if __name__ == "__main__":
    done = export_chapters()
    print(f"exported {len(done)} chapter(s) into tinyllm/", file=sys.stderr)
