"""Fixtures for the tests of the built book, and which tests are slow (hand-written)."""
import pytest

from book_pages import build_book


@pytest.fixture(scope="session")
def book_html(tmp_path_factory):
    "The book built once per test session, for the static checks and the browser test."
    return build_book(tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="session")
def finn():
    "The reference run the export tests use (finn-cpu: quicker to export than the 8M Finn chapter 10 shows), on the CPU."
    import tinyllm

    return tinyllm.load("finn-cpu", device="cpu")


@pytest.fixture(scope="session")
def page_finn():
    "The model the book's chat page runs: the reference Finn with chapter 10's int8 weights (`page_model`), on the CPU."
    import tinyllm
    from tinyllm.export import page_model

    return page_model(tinyllm.load("finn", device="cpu"))


@pytest.fixture(scope="session")
def test_rows():
    "The test split of the data the reference run was trained on."
    from tinyllm.data import generate_conversations

    return list(generate_conversations(n=60_000, seed=0)["test"])


def pytest_collection_modifyitems(items):
    """Slow, so `make test-fast` leaves them out: every test that needs the built book (a full Sphinx build). The
    other slow tests carry the marker themselves (`@pytest.mark.slow`; all of tests/test_cli.py, whose commands
    start Python and PyTorch afresh)."""
    for item in items:
        if "book_html" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
