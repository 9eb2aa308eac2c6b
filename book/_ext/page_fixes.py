"""Two fixes to the book's pages for JavaScript errors that tests/test_browser.py found on every page.

- Some inline configuration scripts (sphinx-thebe's, sphinx-togglebutton's) reach a page twice
  under Jupyter Book 1, and the second `const THEBE_JS_URL = ...` is a SyntaxError.
  Each script is kept once.
- pydata-sphinx-theme starts a first-time visitor (nothing in localStorage) in theme mode "",
  which its own script then rejects with a console error. Such a visitor starts in "auto",
  the theme's default.
"""

START_IN_AUTO_MODE = ('if (!document.documentElement.dataset.mode) {'
                      ' document.documentElement.dataset.mode = "auto"; }')


def keep_each_script_once(app, pagename, templatename, context, doctree):
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (str(script.filename or ""), tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique


def setup(app):
    app.add_js_file(None, body=START_IN_AUTO_MODE, priority=0)   # before the theme's own scripts
    app.connect("html-page-context", keep_each_script_once)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
