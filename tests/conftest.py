"""Fixtures for the tests of the built book (hand-written)."""
import pytest

from book_pages import build_book


@pytest.fixture(scope="session")
def book_html(tmp_path_factory):
    "The book built once per test session, for the static checks and the browser test."
    return build_book(tmp_path_factory.mktemp("book"))


def pytest_collection_modifyitems(items):
    "Every test that needs the built book is slow (a full Sphinx build): `make test-fast` leaves them out."
    for item in items:
        if "book_html" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
