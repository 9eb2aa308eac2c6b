"""The book's conceptual diagrams (book/diagrams.py, drawn into tinyllm/images/ by `make diagrams`).

Each diagram must be readable where the book shows it (about 750 px wide): every text inside the
figure, none on top of another, none smaller than 9 pt at 8 inches wide. The committed PNGs must be
the ones the module draws now, one per diagram, and the runtime package must not need the drawing code.
"""
import ast
import inspect
import itertools
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pytest  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from tinyllm.book import diagram  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "book"))
import diagrams  # noqa: E402

COMMITTED = ROOT / "tinyllm" / "images"


def drawn_texts(fig: Figure) -> list[tuple[str, object]]:
    "Each non-empty text of `fig` with its extent in pixels, after a real (Agg) draw."
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts] + fig.texts
    # Text.get_window_extent, not an Annotation's own: that one includes the arrow
    return [(t, Text.get_window_extent(t, renderer)) for t in texts if t.get_visible() and t.get_text().strip()]


@pytest.mark.parametrize("name", list(diagrams.DIAGRAMS))
def test_diagram_is_readable(name):
    fig = diagrams.DIAGRAMS[name]()
    assert isinstance(fig, Figure)
    texts = drawn_texts(fig)
    assert len(texts) >= 5, f"{name}: only {len(texts)} texts"
    width = fig.get_size_inches()[0]
    assert 7.5 <= width <= 9, f"{name}: {width} inches wide"
    page = fig.bbox
    for text, box in texts:
        label = repr(text.get_text())
        assert page.x0 - 0.5 <= box.x0 and box.x1 <= page.x1 + 0.5 and page.y0 - 0.5 <= box.y0 \
            and box.y1 <= page.y1 + 0.5, f"{name}: {label} is cut off by the figure's edge"
        assert text.get_fontsize() * 8 / width >= 9, f"{name}: {label} is under 9 pt at 8 inches wide"
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        assert not box_a.overlaps(box_b), f"{name}: {a.get_text()!r} overlaps {b.get_text()!r}"


def test_names_match_the_functions():
    assert all(draw.__name__ == name for name, draw in diagrams.DIAGRAMS.items())
    public = {name for name, f in inspect.getmembers(diagrams, inspect.isfunction)
              if f.__module__ == diagrams.__name__ and not name.startswith("_")}
    assert public == set(diagrams.DIAGRAMS) | {"png", "main"}, "every other public function is a diagram, in DIAGRAMS"


def test_a_chapter_shows_the_picture_the_book_commits():
    "A chapter shows the committed PNG, shipped with the package; an unknown name gets a clear error."
    assert diagram("bpe_merge").data == (COMMITTED / "bpe_merge.png").read_bytes()
    with pytest.raises(ValueError, match="no diagram 'bpe'.*bpe_merge"):
        diagram("bpe")


def test_the_drawing_code_stays_out_of_the_runtime_package():
    "The library ships the pictures, not matplotlib code: no module of tinyllm/ imports matplotlib at its top."
    for module in (ROOT / "tinyllm").glob("*.py"):
        tree = ast.parse(module.read_text())
        top = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        names = {alias.name for node in top if isinstance(node, ast.Import) for alias in node.names}
        names |= {node.module for node in top if isinstance(node, ast.ImportFrom) and node.module}
        assert not any(name.split(".")[0] == "matplotlib" for name in names), module.name


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    "Every diagram drawn by `make diagrams` into a fresh folder."
    out = tmp_path_factory.mktemp("diagrams")
    diagrams.main(out)
    return out


def test_tool_writes_one_png_per_diagram(drawn):
    assert sorted(p.name for p in drawn.iterdir()) == sorted(f"{name}.png" for name in diagrams.DIAGRAMS)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in drawn.iterdir())


def test_committed_pngs_are_the_diagrams_drawn_now(drawn):
    committed = sorted(p.name for p in COMMITTED.glob("*.png"))
    assert committed == sorted(f"{name}.png" for name in diagrams.DIAGRAMS), \
        "tinyllm/images/ differs from DIAGRAMS: run `make diagrams`"
    stale = [name for name in committed if (COMMITTED / name).read_bytes() != (drawn / name).read_bytes()]
    assert not stale, f"out of date: {stale}; run `make diagrams` and commit the PNGs"
