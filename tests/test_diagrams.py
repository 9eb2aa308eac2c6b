"""The book's conceptual diagrams (tinyllm/diagrams.py, drawn by tools/diagrams.py): hand-written tests.

Each diagram must be readable where the book shows it (about 750 px wide): every text inside the
figure, none on top of another, none smaller than 9 pt at 8 inches wide. The committed PNGs must be
the ones the module draws now, one per diagram.
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

from tinyllm import diagrams  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from diagrams import main as draw_all  # noqa: E402

COMMITTED = ROOT / "book" / "images" / "diagrams"


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
    assert public == set(diagrams.DIAGRAMS) | {"png", "show"}, "every other public function is a diagram, in DIAGRAMS"


def test_a_chapter_shows_the_picture_the_book_commits():
    "`show` gives a notebook the committed PNG's bytes, whatever matplotlib backend the notebook uses."
    assert diagrams.show("bpe_merge").data == (COMMITTED / "bpe_merge.png").read_bytes()


def test_the_diagrams_draw_the_course_as_the_code_defines_it():
    from tinyllm.data import ASSISTANT, END, TEST_SHARE, UNSEEN_SHARE, USER, VALIDATION_SHARE
    from tinyllm.model import IGNORE_INDEX, PRESETS
    from tinyllm.tokenizer import VOCAB_SIZE
    from tinyllm.train import TRAIN_PRESETS, TrainConfig

    cpu, recipe = PRESETS["cpu"], TRAIN_PRESETS["cpu"]
    assert (diagrams.D_MODEL, diagrams.N_HEADS, diagrams.D_FF, diagrams.N_LAYERS, diagrams.CONTEXT_LENGTH) == \
        (cpu["d_model"], cpu["n_heads"], cpu["d_ff"], cpu["n_layers"], cpu["context_length"])
    assert (diagrams.STEPS, diagrams.WARMUP_STEPS, diagrams.PEAK_LR, diagrams.MIN_LR) == \
        (recipe.steps, recipe.warmup_steps, recipe.lr, recipe.min_lr)
    assert diagrams.GRAD_CLIP == TrainConfig.grad_clip and diagrams.IGNORE_INDEX == IGNORE_INDEX
    assert diagrams.BATCH_SIZE == recipe.batch_size
    assert diagrams.VOCAB_SIZE == VOCAB_SIZE and (diagrams.USER, diagrams.ASSISTANT, diagrams.END) == (USER, ASSISTANT, END)
    assert (diagrams.HELD_OUT_SHARE, diagrams.VALIDATION_SHARE, diagrams.TEST_SHARE) == \
        (UNSEEN_SHARE, VALIDATION_SHARE, TEST_SHARE)


def test_module_is_hand_written_and_needs_only_matplotlib():
    "Only matplotlib (and, for `show` in a notebook, IPython's display, which every notebook has)."
    assert "hand-written, not generated" in diagrams.__doc__.splitlines()[0]
    tree = ast.parse(Path(diagrams.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= {"matplotlib", "IPython"} | sys.stdlib_module_names, imported


@pytest.fixture(scope="module")
def drawn(tmp_path_factory) -> Path:
    "Every diagram drawn by tools/diagrams.py into a fresh folder."
    out = tmp_path_factory.mktemp("diagrams")
    draw_all(out)
    return out


def test_tool_writes_one_png_per_diagram(drawn):
    assert sorted(p.name for p in drawn.iterdir()) == sorted(f"{name}.png" for name in diagrams.DIAGRAMS)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in drawn.iterdir())


def test_committed_pngs_are_the_diagrams_drawn_now(drawn):
    committed = sorted(p.name for p in COMMITTED.glob("*.png"))
    assert committed == sorted(f"{name}.png" for name in diagrams.DIAGRAMS), \
        "book/images/diagrams/ differs from DIAGRAMS: run `python tools/diagrams.py`"
    stale = [name for name in committed if (COMMITTED / name).read_bytes() != (drawn / name).read_bytes()]
    assert not stale, f"out of date: {stale}; run `python tools/diagrams.py` and commit the PNGs"
