"""Student versions of the chapters, for teachers (`make assignments`). Hand-written.

Every solution, the code between `### BEGIN SOLUTION` and `### END SOLUTION`, is
replaced by a placeholder: imports stay, each function keeps its signature and
docstring with a body that raises NotImplementedError, and any other code becomes
one `raise NotImplementedError`. The markers stay, so nbgrader (and `restore`)
can find the solutions' places. Prose and checks are kept; outputs are cleared. The title's
Colab links, which lead to both versions, become a line saying which version this is. The prose's
glued numbers ({glue:text}`name:format`, which only the book renders) are written in, as the book
shows them, since the student version has no outputs to take them from. The questionnaire's
answers (the markdown cell tagged `answers`) give way to a line saying where they are.

The student versions are committed in assignments/ so that Colab can open them from the
repository; tests/test_assignments.py fails when one is stale.
"""
import ast
import copy
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = re.compile(r"(### BEGIN SOLUTION\n)(.*?)(### END SOLUTION)", re.DOTALL)
TODO = "raise NotImplementedError(\"write your solution here, then run the check below\")"
LINKS = re.compile(r"^\[Open in Colab\]\(.*\(the exercises without their solutions\)$", re.MULTILINE)
GLUE = re.compile(r"\{glue(?::text)?\}`([^`:]+):?([^`]*)`")
ANSWERS_NOTE = "*The answers are in the chapter itself, and in the teacher's version of this notebook.*"
STUDENT_NOTE = ("*Student version: each exercise's solution is yours to write (its cell raises "
                "`NotImplementedError` until you do); run the check below it when you have.*")


def placeholder(solution: str) -> str:
    "The student's starting point for one solution."
    tree, lines, out, names, other = ast.parse(solution), solution.splitlines(), [], [], False
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out += lines[node.lineno - 1:node.end_lineno]
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            out += ["", ""] if out and out[-1] else []
            start = node.decorator_list[0].lineno if node.decorator_list else node.lineno
            first = node.body[0]
            has_docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                and isinstance(first.value.value, str)
            keep_to = first.end_lineno if has_docstring else first.lineno - 1
            indent = " " * first.col_offset
            out += lines[start - 1:keep_to] + [f'{indent}raise NotImplementedError("write `{node.name}`")', ""]
        else:   # code that computes something: tell the student which names the check reads
            other = True
            targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
            names += [t.id for t in targets if isinstance(t, ast.Name)]
    if other:
        wanted = ", ".join(dict.fromkeys(names))
        out += [f"# your code; the check below uses: {wanted}" if wanted else "# your code", TODO]
    return "\n".join(out).rstrip() + "\n"


def glued_values(notebook: dict) -> dict[str, str]:
    "What the chapter's cells glued: name -> the stored text/plain (see tinyllm/book.py)."
    values = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            if name := output.get("metadata", {}).get("scrapbook", {}).get("name"):
                values[name] = "".join(next(v for k, v in output["data"].items() if k.endswith("text/plain")))
    return values


def with_glued_numbers(text: str, values: dict[str, str]) -> str:
    "Markdown with each {glue:text}`name:format` replaced by the text the book shows for it."
    from myst_nb.core.variables import format_plain_text   # the book's own formatting

    return GLUE.sub(lambda m: format_plain_text(values[m[1]], m[2] or "s"), text)


def student_version(notebook: dict) -> dict:
    "A copy of `notebook` with every solution replaced by its placeholder, glued numbers written in, no outputs."
    student = copy.deepcopy(notebook)
    student["metadata"].pop("widgets", None)   # widget views saved with the outputs: outputs are not shipped
    title = student["cells"][0]
    title["source"] = LINKS.sub(STUDENT_NOTE, "".join(title["source"])).splitlines(keepends=True)
    values = glued_values(notebook)
    for cell in student["cells"]:
        if cell["cell_type"] != "code":
            text = ANSWERS_NOTE if "answers" in cell["metadata"].get("tags", []) else "".join(cell["source"])
            cell["source"] = with_glued_numbers(text, values).splitlines(keepends=True)
            continue
        text = "".join(cell["source"])
        text = SOLUTION.sub(lambda m: m[1] + placeholder(m[2]) + m[3], text)
        cell["source"] = text.splitlines(keepends=True)
        cell["outputs"], cell["execution_count"] = [], None
        tags = [t for t in cell.get("metadata", {}).get("tags", []) if t != "hide-input"]
        if tags:
            cell["metadata"]["tags"] = tags
        else:
            cell.get("metadata", {}).pop("tags", None)
    return student


def restore(student: dict, original: dict) -> list[str]:
    "The cell sources of `student` with the solutions of `original` put back in their places."
    sources = []
    for mine, theirs in zip(student["cells"], original["cells"]):
        solutions = iter(m[2] for m in SOLUTION.finditer("".join(theirs["source"])))
        sources.append(SOLUTION.sub(lambda m: m[1] + next(solutions) + m[3], "".join(mine["source"])))
    return sources


def student_json(chapter: Path) -> str:
    "The student version of a chapter file, as `make assignments` writes it."
    return json.dumps(student_version(json.loads(chapter.read_text())), indent=1, ensure_ascii=False) + "\n"


def write_assignments(out: Path = ROOT / "assignments") -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for chapter in sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb")):
        target = out / chapter.name
        target.write_text(student_json(chapter))
        written.append(target)
    return written


if __name__ == "__main__":
    done = write_assignments()
    print(f"wrote {len(done)} student notebooks to {done[0].parent.relative_to(ROOT)}/: commit them", file=sys.stderr)
