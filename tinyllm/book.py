"""The book's one helper (hand-written, not generated): numbers in the prose come from the cells.

A chapter's cell records a value under a name, `glue("finn_rate", rate)`, and the text quotes it as
{glue:text}`finn_rate:.0%`; the book (Jupyter Book's myst-nb) reads the value from the cell's stored
output, so the prose cannot drift from what the code computed. myst-nb belongs to the book's build,
not to the course package: where it is missing (Colab, a reader's own Jupyter) `glue` prints the
value instead, so the reader sees the number the text refers to under the cell that computed it.
"""


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
