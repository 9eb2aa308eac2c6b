"""Copy figures the README and the book's intro show out of the chapters' stored outputs.

Hand-written. The figures are the chapters' own, as executed by `make execute`; run this
after it. tests/test_book.py checks that each copy equals a stored chapter output.
"""
import base64
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (chapter, a phrase from the code of the cell that draws the figure, file under book/images/)
FIGURES = [
    ("07_inside", "The logit lens on", "logit_lens.png"),
]


def stored_png(chapter: str, phrase: str) -> bytes:
    "The PNG output of the one cell of `chapter` whose code contains `phrase`."
    cells = json.loads((ROOT / "chapters" / f"{chapter}.ipynb").read_text())["cells"]
    matches = [c for c in cells if c["cell_type"] == "code" and phrase in "".join(c["source"])]
    if len(matches) != 1:
        raise SystemExit(f"{chapter}: {len(matches)} cells contain {phrase!r}, expected 1")
    pngs = [o["data"]["image/png"] for o in matches[0].get("outputs", []) if "image/png" in o.get("data", {})]
    if not pngs:
        raise SystemExit(f"{chapter}: the cell with {phrase!r} has no stored figure; run `make execute` first")
    return base64.b64decode(pngs[0])


if __name__ == "__main__":
    for chapter, phrase, name in FIGURES:
        (ROOT / "book" / "images" / name).write_bytes(stored_png(chapter, phrase))
        print(f"book/images/{name} <- chapters/{chapter}.ipynb")
