"""Draw the book's conceptual diagrams into book/images/diagrams/<name>.png.

Hand-written. The diagrams are tinyllm/diagrams.py's; run this after editing it and commit the PNGs.
The files are reproducible (`tinyllm.diagrams.png`: a fixed dpi, no "Software" entry with matplotlib's version).
tests/test_diagrams.py checks that the committed set matches tinyllm.diagrams.DIAGRAMS.
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")   # files only, no window

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))   # the repository's tinyllm, installed or not
from tinyllm.diagrams import DIAGRAMS, png  # noqa: E402

OUT = ROOT / "book" / "images" / "diagrams"


def main(out: Path = OUT) -> list[Path]:
    "Write every diagram as out/<name>.png; return the paths written."
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in DIAGRAMS.items():
        fig = draw()
        path = out / f"{name}.png"
        path.write_bytes(png(fig))   # 120 dpi: 8-inch figures are 960 px wide, shown about 750 px wide
        fig.clear()   # the Figure is not pyplot's: dropping it is enough, this just frees it early
        written.append(path)
        print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return written


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
