"""`make assignments` (tools/assignments.py): student versions of the chapters, for teachers."""
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from book_pages import CHAPTERS, ROOT, source

sys.path.insert(0, str(ROOT / "tools"))
from assignments import (ANSWERS_NOTE, GLUE, LINKS, SOLUTION, STUDENT_NOTE, glued_values, placeholder,  # noqa: E402
                         restore, student_json, student_version, with_glued_numbers, write_assignments)

CHECK_FAILURES = {"NotImplementedError", "NameError", "AssertionError"}
# What a chapter trains before its exercises, made short for the placeholder test: the checks do not depend on how
# well it learned (chapter 4's ladder: seven rungs of 300 steps, most of a minute on two cores)
SHORTER = {"04_transformer": ("steps: int = 300", "steps: int = 3")}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def test_placeholders_keep_signatures_and_imports_and_drop_the_work():
    solution = ('from collections import Counter\n\n\n@decorate\ndef f(x: int) -> int:\n    "Doc."\n'
                '    return x + 1\n\ny = f(2)\n')
    stub = placeholder(solution)
    assert "from collections import Counter" in stub and "def f(x: int) -> int:" in stub and '"Doc."' in stub
    assert "@decorate" in stub and "return x + 1" not in stub and "f(2)" not in stub
    assert 'raise NotImplementedError("write `f`")' in stub and "the check below uses: y" in stub
    compile(stub, "<stub>", "exec")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_student_version_hides_every_solution_and_keeps_the_rest(chapter):
    original = load(chapter)
    student = student_version(original)
    assert len(student["cells"]) == len(original["cells"])
    solutions = 0
    assert LINKS.search(source(original["cells"][0])) and not LINKS.search(source(student["cells"][0]))
    values = glued_values(original)
    assert source(student["cells"][0]) == with_glued_numbers(LINKS.sub(STUDENT_NOTE, source(original["cells"][0])), values)
    for mine, theirs in zip(student["cells"][1:], original["cells"][1:]):
        if "answers" in theirs["metadata"].get("tags", []):
            assert source(mine) == ANSWERS_NOTE, "the questionnaire's answers stay in the teacher's version"
            continue
        if theirs["cell_type"] != "code":
            assert source(mine) == with_glued_numbers(source(theirs), values)   # prose kept, numbers written in
            assert not GLUE.search(source(mine)), "a glued number is left for a notebook that cannot show it"
            continue
        assert mine["outputs"] == [] and mine["execution_count"] is None
        blocks = [m[2] for m in SOLUTION.finditer(source(theirs))]
        solutions += len(blocks)
        if not blocks:
            assert source(mine) == source(theirs)                  # checks and set-up untouched
        for block, stub in zip(blocks, (m[2] for m in SOLUTION.finditer(source(mine)))):
            assert "NotImplementedError" in stub and stub != block
    assert solutions >= 3


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_putting_the_solutions_back_gives_the_chapter_nbval_runs(chapter):
    "So the checks pass with the solutions in place: `make test` runs exactly this notebook under nbval."
    original = load(chapter)
    restored = restore(student_version(original), original)
    values = glued_values(original)
    expected = [source(c) if c["cell_type"] == "code" else
                ANSWERS_NOTE if "answers" in c["metadata"].get("tags", []) else with_glued_numbers(source(c), values)
                for c in original["cells"][1:]]   # the title says which version it is; prose has its numbers written in
    assert restored[1:] == expected


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_committed_student_versions_are_up_to_date(chapter):
    "Colab opens assignments/ from the repository: it must hold today's student version of every chapter."
    committed = ROOT / "assignments" / chapter.name
    assert committed.is_file() and committed.read_text() == student_json(chapter), \
        f"assignments/{chapter.name} is stale: run `make assignments` and commit assignments/"
    assert sorted(p.name for p in (ROOT / "assignments").glob("*.ipynb")) == [c.name for c in CHAPTERS]


def test_glued_numbers_are_written_as_the_book_shows_them():
    notebook = {"cells": [{"cell_type": "code", "source": [], "outputs": [
        {"output_type": "display_data", "metadata": {"scrapbook": {"name": "rate", "mime_prefix": ""}},
         "data": {"application/papermill.record/text/plain": "0.7354"}}]}]}
    values = glued_values(notebook)
    assert with_glued_numbers("in character on {glue:text}`rate:.0%` of them ({glue:text}`rate`)", values) == \
        "in character on 74% of them (0.7354)"


def test_make_assignments_writes_every_chapter(tmp_path):
    written = write_assignments(tmp_path)
    assert [p.name for p in written] == [c.name for c in CHAPTERS]
    assert all(nbformat.validate(nbformat.reads(p.read_text(), as_version=4)) is None for p in written)


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS[:4], ids=lambda p: p.name)   # 5-9 train models: minutes each
def test_with_placeholders_each_check_fails_with_a_message(chapter):
    student = nbformat.reads(json.dumps(student_version(load(chapter))), as_version=4)
    if chapter.stem in SHORTER:
        long, short = SHORTER[chapter.stem]
        training = [c for c in student.cells if long in c.source]
        assert len(training) == 1, f"{chapter.stem}: {long!r} is no longer in one cell: update SHORTER"
        training[0].source = training[0].source.replace(long, short)
    NotebookClient(student, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(ROOT / "chapters")}}).execute()
    cells = student.cells
    solution_at = [i for i, c in enumerate(cells) if c.cell_type == "code" and "### BEGIN SOLUTION" in c.source]
    errors = {i: next((o for o in c.get("outputs", []) if o.output_type == "error"), None)
              for i, c in enumerate(cells) if c.cell_type == "code"}
    before = [i for i in errors if i < solution_at[0] and errors[i]]
    assert not before, f"cells {before} fail before the exercises: {[errors[i].ename for i in before]}"
    for i in solution_at:
        check = next(j for j in range(i + 1, len(cells)) if cells[j].cell_type == "code")
        error = errors[check] or errors[i]
        assert error is not None, f"the check in cell {check} passes without a solution"
        assert error.ename in CHECK_FAILURES and error.evalue, (error.ename, error.evalue)
