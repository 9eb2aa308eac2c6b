"""A Colab-like run: a fresh virtual environment that has PyTorch and nothing of the course.

Colab comes with PyTorch, and gives every notebook a fresh runtime in an empty folder. A chapter's
first cell must install the course on top of it without replacing it, and then the chapter must run
there: chapters 6 and 7 with no `runs/` of the reader's, so on the reference runs shipped with the
library, rather than after the minutes of training chapter 5's run (with nbval's smaller budgets, conftest.py's
SMALLER). Here a new virtual environment gets the course's
torch and a notebook kernel (ipykernel) only. The set-up cell runs as it would in Colab: a
`google.colab` module is faked, and the repository's GitHub address is replaced by a copy of this
checkout. Where Colab downloads packages, this test installs them offline from the wheels `make setup`
keeps of the course's own install (TINYLLM_WHEELS), so it checks the same steps in about the same
time on any machine, whatever its network.
"""
import importlib.util
import json
import os
import shutil
import time
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from book_pages import CONFIG, ROOT

WHEELS = Path(os.environ.get("TINYLLM_WHEELS", ROOT / ".venv" / "wheels"))

TORCH = "torch==2.13.0"          # the pin of requirements.txt: Colab's own torch, in this test
CHAPTERS = {"06_generation": "finn", "07_inside": "finn"}   # and the reference run each uses
PRETEND_COLAB = 'import sys, types\nsys.modules["google.colab"] = types.ModuleType("google.colab")'
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELS)}   # pip, in the fresh environment and its kernel
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root_conftest)
SMALLER = root_conftest.SMALLER   # the smaller budgets nbval runs the heaviest cells on, here too


def installed(python) -> dict[str, str]:
    "Package name -> version in the environment of `python`."
    listing = subprocess.run([str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True,
                             check=True).stdout
    return {package["name"].lower(): package["version"] for package in json.loads(listing)}


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    "A virtual environment with torch and ipykernel, a kernel for it, and the course's source; pip installs offline."
    if not (WHEELS / ".built").exists():
        pytest.skip(f"no wheels in {WHEELS}: `make setup` keeps them")
    home = tmp_path_factory.mktemp("colab")
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True)
    python = home / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", TORCH, "ipykernel"], check=True, timeout=900,
                   env=os.environ | OFFLINE)
    kernel = home / "kernels" / "colab-like"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python"}))
    source = home / "tinyllm-source"               # what `git clone` of the repository would give pip
    shutil.copytree(ROOT / "tinyllm", source / "tinyllm", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    return types.SimpleNamespace(home=home, python=python, source=source, before=installed(python),
                                 kernels=KernelSpecManager(kernel_dirs=[str(home / "kernels")]))


pytestmark = pytest.mark.slow


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_installs_the_course_keeps_torch_and_runs(colab, chapter, monkeypatch, record_property):
    notebook = nbformat.read(ROOT / "chapters" / f"{chapter}.ipynb", as_version=4)
    for cell in notebook.cells:
        for old, new in SMALLER.get(chapter, []):
            cell.source = cell.source.replace(old, new)
    setup = next(c for c in notebook.cells if c.cell_type == "code")
    github = f"git+{CONFIG['repository']['url']}"
    assert github in setup.source
    setup.source = setup.source.replace(github, colab.source.as_uri())
    notebook.cells.insert(0, nbformat.v4.new_code_cell(PRETEND_COLAB))
    workdir = colab.home / chapter                    # an empty folder, like Colab's /content
    workdir.mkdir()
    monkeypatch.delenv("TINYLLM_RUNS", raising=False)  # the kernel sees no runs folder but its own
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)

    manager = KernelManager(kernel_name="colab-like", kernel_spec_manager=colab.kernels)
    start = time.perf_counter()
    NotebookClient(notebook, km=manager, timeout=900, resources={"metadata": {"path": str(workdir)}}).execute()
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds))
    print(f"{chapter}: {seconds:.0f} s in a fresh Colab-like runtime, install included")
    assert not (workdir / "runs").exists(), "the chapter trained a run of its own instead of using the reference"
    outputs = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"using the reference run '{CHAPTERS[chapter]}' shipped with tinyllm" in outputs

    after = installed(colab.python)
    assert after["torch"] == colab.before["torch"], f"the set-up cell replaced torch {colab.before['torch']}"
    assert not [name for name in after if name.startswith("nvidia-") and name not in colab.before], \
        "the set-up cell pulled in CUDA"
    assert "tinyllm" in after
    located = subprocess.run([str(colab.python), "-c", "import tinyllm; print(tinyllm.__file__)"], cwd=colab.home,
                             capture_output=True, text=True, check=True).stdout
    assert str(colab.home / "venv") in located, f"the chapter used another tinyllm: {located}"
