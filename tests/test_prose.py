"""Every sentence in the book is true of the book: numbers come from the cells, and nothing speaks of history.

The rule for a number in the prose (a chapter's markdown, a page of the book, the README):

- A number a cell computes (a rate, a loss, a time, a size, a count) is glued: the cell calls
  `tinyllm.book.glue(name, value)` and the text says {glue:text}`name:format`, so the book shows
  what the cell computed.
- A number may be typed when it is a constant of the code (it is written in one of the chapter's
  code cells: 60,000 conversations, a context of 128 tokens, a 90/5/5 split) or a definition or
  fact from elsewhere, listed in TYPED below with its reason.
- Small counts (integers up to 12, without a % or a decimal point) are words of the text
  ("three exercises", "layer 2", "chapter 5") and are not checked.

The README and the book's pages are plain Markdown (GitHub renders the README): every number they
quote is listed in PAGE_NUMBERS with the chapter value it must equal, or is a constant of TYPED.
Findings the prose interprets (a ranking, a direction) are checked in tests/test_findings.py.
"""
import functools
import re
import sys
from decimal import Decimal

import pytest

from book_pages import CHAPTERS, ROOT, cells, source

sys.path.insert(0, str(ROOT / "tools"))
from assignments import GLUE, glued_values  # noqa: E402

PAGES = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]

NUMBER = re.compile(r"(?<![\w.\-/#])(\d[\d,]*(?:\.\d+)?)(%|×|x\b|\s?[kKM]\b|\s?MB\b)?")

# Numbers a chapter may type although no code cell writes them: definitions and facts, with the reason.
TYPED = {
    "02_tokenizer": {"257": "the id after the 256 byte tokens: the second merge"},
    "03_attention": {"1.00": "a row with a single allowed position has weight 1 by definition"},
    "10_shipping": {"14.2": "the size of onnxruntime-web 1.30.0's smallest .wasm file on npm (ort-wasm-simd-threaded.wasm, "
                            "14,239,897 bytes, from `npm pack onnxruntime-web@1.30.0`)"},
    "05_training": {"65": "a T4's fp16 peak, from NVIDIA's data sheet"},
}
# Numbers typed anywhere: the years and sizes of cited work.
TYPED_EVERYWHERE = {"2017": "a year of cited work", "2019": "a year of cited work", "2023": "a year of cited work",
                    "3.10": "a Python version", "3.11": "a Python version"}


def prose(markdown: str) -> str:
    "The sentences of a markdown text: code, math, roles, links, tags and comments left out."
    text = re.sub(r"```.*?```|~~~.*?~~~", " ", markdown, flags=re.S)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " ", text)            # {glue:text}`...`, {cite}`...`
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]*\$", " ", text, flags=re.S)
    text = re.sub(r"\]\([^)]*\)|https?://\S+", "] ", text)
    text = re.sub(r"<[^>]+>", " ", text)
    return text


def numbers_in(text: str) -> list[tuple[str, str]]:
    "(number, what follows it) for every number worth checking: see the module's docstring."
    found = []
    for match in NUMBER.finditer(prose(text)):
        number, unit = match.group(1).rstrip(","), (match.group(2) or "").strip()
        if not unit and "." not in number and int(number.replace(",", "")) <= 12:
            continue
        found.append((number, unit))
    return found


@functools.cache
def literals(notebook) -> frozenset[Decimal]:
    "Every number written in one chapter's code cells, also as a percentage (0.05 is 5)."
    values = set()
    for cell in cells(notebook):
        if cell["cell_type"] == "code":
            for literal in re.findall(r"(?<![\w.])\d[\d_]*(?:\.\d+)?(?:e-?\d+)?", source(cell)):
                value = Decimal(literal.replace("_", ""))
                values |= {value, value * 100}
    return frozenset(values)


def code_constants(notebook) -> set[Decimal]:
    "The numbers written in the code cells of this chapter and the earlier ones."
    return set().union(*(literals(earlier) for earlier in CHAPTERS[:CHAPTERS.index(notebook) + 1]))


def glued(notebook) -> dict[str, str]:
    "The values a chapter glued: name -> the text/plain the book formats."
    return glued_values({"cells": cells(notebook)})


def glue_text(value: str, spec: str) -> str:
    "What the book shows for {glue:text}`name:spec` (myst-nb's own formatting)."
    from myst_nb.core.variables import format_plain_text

    return format_plain_text(value, spec or "s")


def roles(notebook) -> list[tuple[str, str]]:
    "(name, format) of every glue role in the chapter's markdown."
    return [(m[1], m[2]) for cell in cells(notebook) if cell["cell_type"] == "markdown"
            for m in GLUE.finditer(source(cell))]


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_numbers_in_the_prose_are_glued_or_constants(notebook):
    constants = code_constants(notebook)
    allowed = {**TYPED_EVERYWHERE, **TYPED.get(notebook.stem, {})}
    typed = []
    for cell in cells(notebook):
        if cell["cell_type"] != "markdown":
            continue
        for number, unit in numbers_in(source(cell)):
            value = Decimal(number.replace(",", ""))
            if number in allowed or (unit in ("", "%", "k", "K") and (
                    value in constants or (unit in ("k", "K") and value * 1000 in constants))):
                continue
            typed.append(f"{number}{unit} (cell {cell['id']})")
    assert not typed, (f"{notebook.name}: numbers typed in the prose that no code cell writes; glue them "
                       f"from the cell that computes them (tinyllm.book.glue), or list a definition in TYPED: {typed}")


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.stem)
def test_every_glued_name_the_prose_quotes_exists_and_formats(notebook):
    values = glued(notebook)
    for name, spec in roles(notebook):
        assert name in values, f"{notebook.name}: the prose quotes {name!r}, which no cell glued"
        glue_text(values[name], spec)          # raises when the format does not fit the value
    checked = (ROOT / "tests" / "test_findings.py").read_text()
    unused = {name for name in set(values) - {name for name, _ in roles(notebook)} if f'"{name}"' not in checked}
    assert not unused, f"{notebook.name}: glued, but neither quoted nor checked in tests/test_findings.py: {sorted(unused)}"


def test_glue_records_what_myst_nb_reads(capsys):
    from IPython.core.interactiveshell import InteractiveShell

    from tinyllm.book import glue

    shell = InteractiveShell.instance()
    shown = []
    shell.display_pub.publish = lambda data, metadata=None, **kw: shown.append((data, metadata))
    try:
        assert glue("rate", 0.735) == 0.735
    finally:
        InteractiveShell.clear_instance()
    (data, metadata), = shown
    assert metadata["scrapbook"]["name"] == "rate"
    assert glue_text(data["application/papermill.record/text/plain"], ".0%") == "74%"


HISTORY = {
    r"design notes": "the course's design is not the reader's",
    r"we cannot see|cannot see that set|hidden set": "a set the reader cannot see",
    r"earlier (data|version|run|wordings|doubling)|previous version|used to be|first pointed at|"
    r"had before|before chapter 1 gave|last fix to": "earlier versions of the course",
    r"course'?s (target|goal)|target of \d": "a target set outside the book",
    r"the GPUs? we (had|used)|we had no GPU|\bour (machine|GPU|laptop)|on the machines? we|in our runs": "our machines and runs",
    r"update (the|this) (text|prose|paragraph)|update it\b": "the book's wording, asserted in a reader's cell",
    r"original (60K|fish) data set|this course started from": "the data set the course started from",
    r"course'?s (browser )?tests? (checks?|asserts?)|checked (here )?by the course'?s tests|while the course was "
    r"written|we have not run|course has not run|machines? the course was measured on": "how the book was made or checked",
}


@pytest.mark.parametrize("page", [*CHAPTERS, *PAGES], ids=lambda p: p.name)
def test_the_book_speaks_only_of_what_it_computes(page):
    if page.suffix == ".ipynb":
        texts = [(c.get("id"), source(c)) for c in cells(page)]
    else:
        texts = [(page.name, page.read_text())]
    found = [f"{pattern!r} ({why}) in {where}" for where, text in texts
             for pattern, why in HISTORY.items() if re.search(pattern, text, flags=re.I)]
    assert not found, f"{page.name}: {found}"


def chapter(stem: str):
    return next(c for c in CHAPTERS if c.stem.startswith(stem))


def millions(value: str) -> str:
    return f"{int(value) / 1e6:.1f}M"


# The numbers the README and the book's pages quote, each with the chapter value it must equal:
# (number as written) -> (chapter, glued name, how the page writes it).
PAGE_NUMBERS = {
    "1.7M": ("08_evaluation", "small_params", millions),
    "8.1M": ("04_transformer", "t4_params", millions),
    "3.5MB": ("05_training", "reference_mb", lambda value: f"{float(value):.1f}MB"),
}


def page_values() -> dict[str, str]:
    return {written: form(glued(chapter(ch))[name]) for written, (ch, name, form) in PAGE_NUMBERS.items()}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_quote_only_numbers_the_chapters_compute(page):
    constants = set().union(*(code_constants(c) for c in CHAPTERS))
    quoted = page_values()
    text = re.sub(r"about \d+ min \| about \d+ lines", "", page.read_text())   # teachers.md's table: test_book
    unchecked = []
    for number, unit in numbers_in(text):
        written = number + unit
        if written in quoted or number in TYPED_EVERYWHERE or Decimal(number.replace(",", "")) in constants and unit in ("", "%"):
            continue
        unchecked.append(written)
    assert not unchecked, f"{page.name}: numbers that no chapter computes or defines: {unchecked}"


def test_page_numbers_equal_the_chapters():
    for written, shown in page_values().items():
        assert written.replace(" ", "") == shown.replace(" ", ""), f"a page says {written}, the chapter computes {shown}"
