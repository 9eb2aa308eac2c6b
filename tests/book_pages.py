"""What the book tests share: the chapters, the table of contents, and one build of the book."""
import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def toc_files() -> list[str]:
    "The book's pages as the table of contents lists them, without suffix."
    files = [TOC["root"]]
    for part in TOC.get("parts", []):
        files += [entry["file"] for entry in part["chapters"]]
    return files


def cells(notebook: Path) -> list[dict]:
    return json.loads(notebook.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def title(entry: str) -> str:
    "A page's first heading, from its source: a chapter's first Markdown cell, or a Markdown file."
    notebook = ROOT / f"{entry}.ipynb"
    text = source(cells(notebook)[0]) if notebook.exists() else (ROOT / f"{entry}.md").read_text()
    return re.search(r"^# (.+)$", text, re.M)[1]


def stored_figures(notebook: Path) -> int:
    "How many figures (PNG outputs) a chapter has stored."
    return sum("image/png" in o.get("data", {}) for c in cells(notebook) for o in c.get("outputs", []))


def colab_url(notebook: Path) -> str:
    "Where a chapter's launch button must point."
    repository = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repository}/blob/main/chapters/{notebook.name}"


def build_book(out: Path) -> Path:
    "Build the book as `make book` does (warnings are errors) into `out`; returns the HTML folder."
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    result = subprocess.run([str(jupyter_book), "build", str(ROOT), "--path-output", str(out),
                             "-W", "-n", "--keep-going"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "_build" / "html"


READING_WORDS_PER_MINUTE = 200


def teaching_counts(notebook: Path) -> tuple[int, int]:
    """What book/teachers.md's table says of a chapter: minutes to read its prose (questionnaire answers left out,
    to the nearest 5, at least 5) and lines of code in its code cells (to the nearest 50, at least 50)."""
    words = code = 0
    for cell in cells(notebook):
        text = source(cell)
        if cell["cell_type"] == "code":
            code += sum(bool(line.strip()) for line in text.splitlines())
        elif not text.startswith(":::{admonition} Answers"):
            words += len(re.findall(r"[A-Za-z0-9']+", re.sub(r"\{glue:text\}`[^`]*`", "N", text)))
    return max(5, round(words / READING_WORDS_PER_MINUTE / 5) * 5), max(50, round(code / 50) * 50)
