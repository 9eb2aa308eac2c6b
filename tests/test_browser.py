"""The built book in a real browser: Debian's headless Chromium, driven by Playwright.

Every page of the table of contents is opened from a local HTTP server. A page must show its
title and headings, raise no JavaScript error, load every image and point its Colab button at
its own notebook; every link within the book must lead to a page (and an anchor) that exists.
The test runs offline: requests that leave the server are blocked, and they may only go to the
two CDNs the book is known to use (MathJax, and the manager that draws ipywidgets).
A screenshot of each page is saved in _build/screenshots/ for a person to look at.

Chromium comes from `make browser` (Debian's package). Without it the test is skipped, unless
TINYLLM_BROWSER_TESTS=required (as in CI), where a missing browser fails the test instead.
"""
import functools
import http.server
import os
import re
import shutil
import threading
import time
import types
import urllib.request
import warnings
from urllib.parse import urldefrag, urlparse

import pytest
from playwright import sync_api as playwright

from tinyllm.generate import MAX_NEW_TOKENS

from book_pages import CHAPTERS, ROOT, colab_url, stored_figures, title, toc_files

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# no sandbox as root (CI); nothing in the background that would try to reach Google
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
KNOWN_CDNS = {"cdn.jsdelivr.net", "cdnjs.cloudflare.com"}
SCREENSHOTS = ROOT / "_build" / "screenshots"

if not CHROMIUM and os.environ.get("TINYLLM_BROWSER_TESTS") != "required":
    pytest.skip("no Chromium: `make browser` installs it", allow_module_level=True)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(book_html):
    "The built book served over HTTP on a free local port; yields its base URL."
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(QuietHandler, directory=str(book_html)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM, "TINYLLM_BROWSER_TESTS=required, but there is no Chromium: run `make browser`"
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def watch(page, site: str) -> tuple[list, list, list]:
    "Cut `page` off from everything but `site`; return the lists its blocked requests, failures and errors go to."
    external, failed, errors = [], [], []

    def only_local(route):
        if route.request.url.startswith(site) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("console", lambda message: errors.append((message.text, message.location.get("url", "")))
            if message.type == "error" else None)
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.on("response", lambda response: failed.append(f"{response.status} {response.url}")
            if response.status >= 400 else None)
    return external, failed, errors


def visit(browser, site: str, entry: str) -> dict:
    "Open a page, wait for it to load, save a screenshot and report what a reader would run into."
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    external, failed, errors = watch(page, site)
    response = page.goto(f"{site}{entry}.html", wait_until="load")
    page.wait_for_timeout(300)                 # let deferred scripts run
    report = {
        "status": response.status,
        "title": page.title(),
        "h1": page.locator("h1").first.inner_text(),
        "h2": page.locator("h2").count(),
        "broken_images": page.evaluate(
            "() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"),
        "images": page.evaluate("() => document.images.length"),
        "colab": page.evaluate("() => Array.from(document.querySelectorAll('a[href*=\"colab.research\"]'), a => a.href)"),
        "links": page.evaluate("() => Array.from(document.querySelectorAll('a[href]'), a => a.href)"),
        "external": external,
        "failed": [f for f in failed if f not in external],
        # a blocked request shows up as a console error about that resource: not the page's fault
        "errors": [e if isinstance(e, str) else e[0] for e in errors
                   if isinstance(e, str) or e[1] not in external],
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    screenshot = SCREENSHOTS / f"{entry.replace('/', '_')}.png"
    try:
        page.screenshot(path=screenshot, full_page=True)
    except playwright.Error:   # headless Chromium now and then fails to capture a very tall page: once more
        page.wait_for_timeout(1000)
        page.screenshot(path=screenshot, full_page=True)
    page.close()
    return report


@pytest.fixture(scope="module")
def pages(site, browser) -> dict[str, dict]:
    return {entry: visit(browser, site, entry) for entry in toc_files()}


@pytest.mark.parametrize("entry", toc_files())
def test_page_loads_with_its_title_and_no_errors(pages, entry):
    page = pages[entry]
    heading = title(entry)
    assert page["status"] == 200
    assert page["title"].startswith(heading.replace("'", "’")) or page["title"].startswith(heading), page["title"]
    assert page["h1"].replace("’", "'").startswith(heading.replace("’", "'")), page["h1"]
    assert not page["errors"], f"{entry}: JavaScript errors: {page['errors']}"
    assert not page["failed"], f"{entry}: requests that failed: {page['failed']}"
    assert not page["broken_images"], f"{entry}: images that did not load: {page['broken_images']}"
    outside = {urlparse(url).hostname for url in page["external"]}
    assert outside <= KNOWN_CDNS, f"{entry}: the page needs {outside - KNOWN_CDNS}"


@pytest.mark.parametrize("notebook", CHAPTERS, ids=lambda p: p.name)
def test_chapter_page_shows_its_figures_and_launches_its_notebook_and_student_version(pages, notebook):
    page = pages[f"chapters/{notebook.stem}"]
    assert page["images"] >= stored_figures(notebook)
    assert page["h2"] >= 3, f"{notebook.stem}: only {page['h2']} section headings"
    student = colab_url(notebook).replace("/chapters/", "/assignments/")
    assert set(page["colab"]) == {colab_url(notebook), student}, page["colab"]


def test_every_link_within_the_book_resolves(pages, site):
    targets = {link for page in pages.values() for link in page["links"] if link.startswith(site)}
    html = {}
    for target in sorted(targets):
        address, anchor = urldefrag(target)
        if address not in html:
            with urllib.request.urlopen(address) as response:   # raises on 404
                html[address] = response.read().decode()
        if anchor:
            assert f'id="{anchor}"' in html[address], f"{target}: no such anchor"
    assert len(html) >= len(toc_files())


# ---------------------------------------------------------------- the chat page (chapter 10): Finn in the browser

CHAT_PAGE = "book/chat"
REPLY_DONE = '.tinyllm-message[data-done="true"]'   # a reply, or the error shown in its place
TYPED = ["<|end|> what is this? 🐟", "WHAT IS THE MEANING OF LIFE?", "é, ñ, 水: do you like them?"]


@pytest.fixture(scope="module")
def chat_questions(test_rows):
    "A reader's questions: test-split questions (each different), then capitals, markers and emoji typed as text."
    return list(dict.fromkeys(row["input"] for row in test_rows))[:9] + TYPED


def ask(page, text: str, timeout_ms: int = 20_000) -> str:
    "Type `text` into the chat and press Enter, as a reader does; return the reply once it is complete."
    done = page.locator(REPLY_DONE)
    before = done.count()
    page.fill("#tinyllm-input", text)
    page.press("#tinyllm-input", "Enter")
    page.wait_for_function(f"document.querySelectorAll('{REPLY_DONE}').length > {before}", timeout=timeout_ms)
    return done.nth(before).text_content()


@pytest.fixture(scope="module")
def chat_page(browser, site, page_finn, chat_questions):
    """The book's chat page, cut off from everything but the local server; and when its loading started (the slow
    fixtures first, so that the time to the first reply printed is the page's own)."""
    page = browser.new_page(viewport={"width": 1100, "height": 900})
    external, failed, errors = watch(page, site)
    started = time.perf_counter()
    page.goto(f"{site}{CHAT_PAGE}.html", wait_until="load")
    yield types.SimpleNamespace(page=page, started=started, external=external, failed=failed, errors=errors)
    page.close()


def test_chat_page_answers_greedily_word_for_word_as_python_does(chat_page, page_finn, chat_questions):
    page = chat_page.page
    page.fill("#tinyllm-temperature", "0")
    replies = []
    for i, question in enumerate(chat_questions):
        page.click("#tinyllm-reset")                     # each question in a new conversation, as reply() does
        replies.append(ask(page, question))
        if i == 0:
            first_reply_seconds = time.perf_counter() - chat_page.started
        shown = page.locator(".tinyllm-message.user").all_text_contents()
        assert shown == [question], "the page must show what was typed, as typed"
    assert len(chat_questions) >= 10
    assert replies == [page_finn.reply(question, temperature=0) for question in chat_questions]
    speed = re.fullmatch(r"last reply: (\d+) tokens in ([\d.]+) s, (\d+) tokens per second in this browser",
                         page.locator("#tinyllm-speed").text_content())
    assert speed, "the page shows how fast its last reply came"
    assert 0 < int(speed[1]) <= MAX_NEW_TOKENS and int(speed[3]) > 0, speed.group(0)
    # Printed, not asserted: how fast a page answers depends on the machine that runs the test.
    print(f"first reply {first_reply_seconds:.2f} s after the page began to load; {speed.group(0)}")
    assert not chat_page.errors and not chat_page.failed, (chat_page.errors, chat_page.failed)
    assert not chat_page.external, f"the chat page reached outside: {chat_page.external}"


def test_chat_page_keeps_the_conversation_as_python_does(chat_page, page_finn, chat_questions):
    page = chat_page.page
    page.fill("#tinyllm-temperature", "0")
    page.click("#tinyllm-reset")
    conversation = page_finn.conversation(temperature=0)
    turns = ["hello finn", "are you hungry?", "what is the meaning of life?", "do you like the rain?"]
    with warnings.catch_warnings(record=True) as forgetting:
        warnings.simplefilter("always")
        expected = [conversation.say(turn) for turn in turns]
    assert [ask(page, turn) for turn in turns] == expected
    notes = page.locator(".tinyllm-message.note").all_text_contents()
    assert [str(w.message) for w in forgetting] == [n.replace(" Finn forgets", " it forgets") for n in notes]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#tinyllm-chat").screenshot(path=SCREENSHOTS / "chat_with_finn.png")   # chapter 10 shows it
    assert not chat_page.errors and not chat_page.external, (chat_page.errors, chat_page.external)


def test_chat_page_tokenizer_gives_our_ids(chat_page, page_finn, test_rows):
    from tinyllm.chat_format import chat_messages

    texts = sorted({text for row in test_rows for text in [*row["history"], row["input"], row["output"]]})
    texts += TYPED + ["  two  spaces\tand a tab\n", "it's, IT'S, don't", "12345.678", "\u00a0nbsp"]
    ids = chat_page.page.evaluate("texts => texts.map(t => window.tinyllm.chat.tokenizer.encode(t))", texts)
    assert ids == [page_finn.tok.encode(text) for text in texts]
    messages = chat_messages(test_rows[0])
    assert chat_page.page.evaluate("m => window.tinyllm.chat.tokenizer.encodeChat(m, true)", messages) == \
        page_finn.tok.encode_chat(messages, add_generation_prompt=True)


def test_chat_page_fits_a_conversation_into_the_prompt_as_python_does(chat_page, page_finn, test_rows):
    "The page's prompt rule is chapter 5's fit_prompt, as chat uses it: the same ids, short or long, history or not."
    from tinyllm.chat_format import chat_messages

    conversations = [chat_messages(row)[:-1] for row in test_rows[:40]]   # up to the user's last message
    long_history = [m for row in test_rows[:12] for m in chat_messages(row)[-2:]]
    conversations += [long_history + [{"role": "user", "content": "and now?"}],
                      [{"role": "user", "content": "blub " * 200}],
                      long_history + [{"role": "user", "content": "hi " * 150}]]
    for max_new_tokens in (40, 64):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the overlong message's warning; the page says it as a note
            ours = [page_finn.prompt_ids(messages, max_new_tokens) for messages in conversations]
        page = chat_page.page.evaluate("([all, n]) => all.map(m => window.tinyllm.chat.promptIds(m, n))",
                                       [conversations, max_new_tokens])
        assert page == ours


def test_chat_page_samples_by_its_seed_and_refuses_an_empty_message(chat_page):
    page = chat_page.page
    page.fill("#tinyllm-temperature", "1")

    def sampled(seed: int) -> str:
        page.click("#tinyllm-reset")
        page.fill("#tinyllm-seed", str(seed))
        return ask(page, "what do you think about the rain?")

    first = [sampled(seed) for seed in range(4)]
    assert [sampled(seed) for seed in range(4)] == first, "the same seed must give the same reply"
    assert len(set(first)) > 1, "different seeds gave the same sampled reply four times"
    page.fill("#tinyllm-input", "   ")
    page.press("#tinyllm-input", "Enter")
    assert "say something" in page.locator(".tinyllm-message.error").last.text_content()
    assert not chat_page.errors and not chat_page.external, (chat_page.errors, chat_page.external)


def test_chat_page_steers_as_python_does(chat_page, page_finn, chat_questions):
    "A topic and a slider (chapter 7): at each scale the page's greedy replies are those of `steered(page_model(finn))`."
    from tinyllm.interpret import run_directions, steered

    page, directions = chat_page.page, run_directions("finn")
    page.fill("#tinyllm-temperature", "0")
    assert page.input_value("#tinyllm-steer-topic") == "food" and page.input_value("#tinyllm-steer-scale") == "0"
    pushed = []
    for topic, scale in [("food", 4), ("food", -3), ("sleep", 1.5)]:
        page.select_option("#tinyllm-steer-topic", topic)
        page.fill("#tinyllm-steer-scale", str(scale))
        assert page.locator("#tinyllm-steer-shown").text_content() == str(scale), "the page shows the scale"
        push = steered(page_finn, directions[topic], scale)
        for question in chat_questions[:3]:
            page.click("#tinyllm-reset")
            expected = push.reply(question, temperature=0)
            assert ask(page, question) == expected, (topic, scale, question)
            pushed.append(expected != page_finn.reply(question, temperature=0))
    assert sum(pushed) > len(pushed) / 2, "these pushes change most replies: the page is tested steered, not as trained"
    page.select_option("#tinyllm-steer-topic", "food")
    page.fill("#tinyllm-steer-scale", "0")   # Finn as trained again, for the tests after this one
    assert not chat_page.errors and not chat_page.external, (chat_page.errors, chat_page.external)


def test_chat_page_works_opened_from_disk(browser, book_html, page_finn):
    "file://, as a reader opens the built book offline: the model comes as a script, not a download."
    for entry in [book_html / "chat" / "index.html", book_html / f"{CHAT_PAGE}.html"]:
        page = browser.new_page()
        errors = []
        page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(entry.as_uri(), wait_until="load")
        page.fill("#tinyllm-temperature", "0")
        assert ask(page, "are you hungry?") == page_finn.reply("are you hungry?", temperature=0), entry
        page.close()
        if entry.name == "index.html":   # the page of its own loads nothing but its four files
            assert not errors, errors
        else:                             # the book's theme also asks for its CDNs, unreachable offline
            assert not [e for e in errors if "net::ERR_" not in e], errors
