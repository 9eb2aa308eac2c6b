"""The book: table of contents, chapters committed with outputs, set-up cells, exercises, and a real build."""
import json
import re
import sys

import pytest

from book_pages import (CHAPTERS, CONFIG, ROOT, cells, colab_url, source, stored_figures, teaching_counts, title,
                        toc_files)


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    for entry in toc_files():
        assert (ROOT / f"{entry}.md").exists() or (ROOT / f"{entry}.ipynb").exists(), entry
    listed = {e for e in toc_files() if e.startswith("chapters/")}
    assert listed == {f"chapters/{c.stem}" for c in CHAPTERS}


def test_config_renders_stored_outputs_and_only_the_toc():
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["only_build_toc_files"] is True
    assert CONFIG["repository"]["url"].startswith("https://github.com/")
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_committed_executed_without_errors(notebook):
    code = [c for c in cells(notebook) if c["cell_type"] == "code" and source(c).strip()]
    unrun = [source(c)[:60] for c in code if c["execution_count"] is None]
    assert not unrun, f"{notebook.name}: cells without stored outputs (run `make execute`): {unrun[:3]}"
    counts = [c["execution_count"] for c in code]
    assert counts == list(range(1, len(code) + 1)), f"{notebook.name}: not executed top to bottom on a clean kernel"
    for c in code:
        for output in c["outputs"]:
            text = json.dumps(output)
            assert output["output_type"] != "error" and "Traceback (most recent call last)" not in text, \
                f"{notebook.name}: a stored output holds an error: {source(c)[:60]!r}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_chapter_opens_with_a_colab_set_up_cell(notebook):
    first = next(c for c in cells(notebook) if c["cell_type"] == "code")
    text = source(first)
    assert "# NBVAL_SKIP" in text and '"google.colab" in sys.modules' in text
    url = CONFIG["repository"]["url"]
    assert f"git+{url}" in text, f"{notebook.name}: the set-up cell must install from {url} (_config.yml)"
    assert "torch" not in text.replace("PyTorch", ""), "the set-up cell must not (re)install torch"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_chapter_ends_with_exercises_and_hidden_solutions(notebook):
    solutions = [c for c in cells(notebook) if "### BEGIN SOLUTION" in source(c)]
    assert len(solutions) >= 3, f"{notebook.name}: fewer than three exercises with solutions"
    for cell in solutions:
        assert source(cell).count("### BEGIN SOLUTION") == source(cell).count("### END SOLUTION")
        assert "hide-input" in cell["metadata"].get("tags", []), "solutions are hidden in the book"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_chapter_closes_with_a_questionnaire_hidden_answers_and_further_reading(notebook):
    *_, questions, answers, reading = [source(c) for c in cells(notebook)]
    assert questions.startswith("## Questionnaire") and reading.startswith("## Further reading")
    asked = re.findall(r"^(\d+)\. ", questions, re.M)
    assert 8 <= len(asked) <= 12 and re.findall(r"^(\d+)\. ", answers, re.M) == asked, "one answer per question"
    assert answers.startswith(":::{admonition} Answers\n:class: dropdown"), "answers are hidden in the book"
    assert "answers" in cells(notebook)[-2]["metadata"].get("tags", []), "tagged, so student versions leave them out"
    known = set(re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(), re.M))
    cited = re.findall(r"\{cite\}`([^`]+)`", reading)
    assert len(cited) >= 3 and set(cited) <= known, set(cited) - known


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_nbval_markers_are_written_so_nbval_sees_them(notebook):
    for cell in cells(notebook):
        for line in source(cell).splitlines():
            if "NBVAL_" in line:
                assert line.strip() in {"# NBVAL_SKIP", "# NBVAL_IGNORE_OUTPUT", "# NBVAL_CHECK_OUTPUT",
                                        "# NBVAL_RAISES_EXCEPTION"}, f"{notebook.name}: nbval ignores {line!r}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_ignored_outputs_still_assert_something(notebook):
    for cell in cells(notebook):
        if "NBVAL_IGNORE_OUTPUT" in source(cell):
            assert re.search(r"^\s*assert ", source(cell), re.M), f"{notebook.name}: {source(cell)[:60]!r}"


def quoted_pairs(markdown: str, heading: str) -> list[tuple[str, str]]:
    "The (you, finn) lines quoted in the section of `markdown` under `## heading`."
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"> \*\*you:\*\* (.+?)\\\n> \*\*finn:\*\* (.+)", section)


def test_intro_conversation_comes_from_the_generator():
    from tinyllm.data import generate_conversations

    pairs = quoted_pairs((ROOT / "book" / "intro.md").read_text(), "A conversation with Finn")
    assert len(pairs) >= 3
    generated = {(r["input"], r["output"]) for ds in generate_conversations().values() for r in ds}
    missing = [p for p in pairs if p not in generated]
    assert not missing, f"book/intro.md quotes conversations the generator does not produce: {missing}"


@pytest.mark.parametrize("page, heading", [("book/intro.md", "Finn, trained"),
                                           ("README.md", "Finn, trained")])
def test_quoted_model_replies_are_chapter_6s_stored_transcript(page, heading):
    pairs = quoted_pairs((ROOT / page).read_text(), heading)
    assert len(pairs) >= 3
    stored = "".join("".join(o.get("text", "")) for c in cells(ROOT / "chapters" / "06_generation.ipynb")
                     if c["cell_type"] == "code" for o in c.get("outputs", []))
    missing = [(you, finn) for you, finn in pairs if f"you:  {you}\nfinn: {finn}\n" not in stored]
    assert not missing, f"{page} quotes replies chapter 6 did not produce: {missing}"


def test_teachers_table_reading_and_code_are_the_chapters_own():
    rows = re.findall(r"^\| (\d+)\. [^|]+\| about (\d+) min \| about (\d+) lines \|", (ROOT / "book" / "teachers.md").read_text(),
                      flags=re.M)
    assert [int(n) for n, _, _ in rows] == list(range(1, len(CHAPTERS) + 1)), "a row per chapter, in order"
    for (n, minutes, lines), chapter in zip(rows, CHAPTERS):
        assert (int(minutes), int(lines)) == teaching_counts(chapter), f"teachers.md's row for chapter {n} is stale"


def test_book_figures_are_the_chapters_own():
    sys.path.insert(0, str(ROOT / "tools"))
    from book_figures import FIGURES, stored_png

    for chapter, phrase, name in FIGURES:
        assert (ROOT / "book" / "images" / name).read_bytes() == stored_png(chapter, phrase), \
            f"book/images/{name} differs from chapter {chapter}'s figure: run tools/book_figures.py"
        assert f"images/{name}" in (ROOT / "book" / "intro.md").read_text()
        assert f"book/images/{name}" in (ROOT / "README.md").read_text()


def test_book_builds_without_warnings(book_html):
    "The build itself is the `book_html` fixture (tests/conftest.py): it fails on any warning."
    for notebook in CHAPTERS:
        page_path = book_html / "chapters" / f"{notebook.stem}.html"
        page = page_path.read_text()
        heading = title(f"chapters/{notebook.stem}")
        pattern = re.escape(heading).replace("'", "[’']")   # Sphinx curls apostrophes
        assert re.search("<h1>" + pattern, page), f"{notebook.stem}: the title {heading!r} is missing"
        assert colab_url(notebook) in page
        student = colab_url(notebook).replace("/chapters/", "/assignments/")
        assert f'href="{student}"' in page, f"{notebook.stem}: no link to the student version in Colab"
        assert (ROOT / "assignments" / notebook.name).is_file()
        figures = stored_figures(notebook)
        images = re.findall(r'<img[^>]+src="([^"]+)"', page)
        assert len(images) >= figures, f"{notebook.stem}: {figures} stored figures, {len(images)} shown"
        links = re.findall(r'href="([^"#:]+\.html)(?:#[^"]*)?"', page)
        for target in images + links:
            assert (page_path.parent / target).resolve().exists(), f"{notebook.stem}: broken link {target}"
        assert "Traceback" not in page, f"{notebook.stem}: a traceback is shown on the page"
