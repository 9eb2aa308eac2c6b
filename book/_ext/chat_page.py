"""The book's chat page (book/chat.md) runs Finn in the reader's browser, with no server.

On every HTML build, chapter 10's `export_web` writes the page's scripts from the reference run shipped
with the library, finn (the 8.1M model), into the built site, as _build/html/chat/: chat.js (the model, the tokenizer and the chat
box, hand-written in tinyllm/web/), chat.css, model.js (the run's config, tokenizer and weights) and
index.html, the same chat as a page of its own. book/chat.md loads them from there.
"""
from pathlib import Path


def write_chat(app, exception):
    if exception is None and app.builder.format == "html":
        from tinyllm.export import export_web

        export_web("finn", Path(app.outdir) / "chat", force=True)


def setup(app):
    app.connect("build-finished", write_chat)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
