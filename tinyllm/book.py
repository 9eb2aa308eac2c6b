"""The book's helpers (hand-written, not generated): numbers in the prose come from the cells, and the
diagrams come with the package.

A chapter's cell records a value under a name, `glue("finn_rate", rate)`, and the text quotes it as
{glue:text}`finn_rate:.0%`; the book (Jupyter Book's myst-nb) reads the value from the cell's stored
output, so the prose cannot drift from what the code computed. myst-nb belongs to the book's build,
not to the course package: where it is missing (Colab, a reader's own Jupyter) `glue` prints the
value instead, so the reader sees the number the text refers to under the cell that computed it.

The conceptual diagrams are drawn by code on the book's side (book/diagrams.py, `make diagrams`) into
tinyllm/images/, which ships with the package, so a chapter opened alone in Colab shows them without
matplotlib's drawing code or the repository.
"""
from importlib import resources


def glue(name, value):
    "Record `value` for the book's prose under `name` (see the module's docstring); returns `value`."
    if getattr(value, "ndim", None) == 0:   # a NumPy or PyTorch scalar: the book formats plain numbers
        value = value.item()
    try:
        from myst_nb import glue as myst_nb_glue
    except ImportError:
        print(f"[{name} = {value}]")
    else:
        myst_nb_glue(name, value, display=False)
    return value


def diagram(name: str):
    "The book's diagram `name` (a PNG shipped in tinyllm/images/), shown in a notebook."
    from IPython.display import Image   # a notebook's display: imported only when one asks

    picture = resources.files("tinyllm") / "images" / f"{name}.png"
    if not picture.is_file():
        known = sorted(p.name.removesuffix(".png") for p in (resources.files("tinyllm") / "images").iterdir())
        raise ValueError(f"no diagram {name!r}: choose one of {', '.join(known)}")
    return Image(picture.read_bytes())
