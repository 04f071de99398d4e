"""Kit's pages from templates (grader/templates/): one Jinja2 environment per way of escaping.

HTML pages are autoescaped; Markdown ones escape every student-derived text with the `md`
filter, or put it in a code span (`code`) or a fenced block (`fence`), so that a message can
never become a link, an image or markup.
"""
from __future__ import annotations

import functools
import re

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&!#])")


def md_text(text: str) -> str:
    """`text` as literal Markdown on one line: every character that makes links, images, HTML or markup escaped."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))


def md_code(text: str) -> str:
    """`text` as an inline code span (fit for a table cell): nothing in it is read as Markdown."""
    text = " ".join(text.split()).replace("|", "\\|")
    ticks = "`"
    while ticks in text:
        ticks += "`"
    return f"{ticks} {text} {ticks}" if text.startswith("`") or text.endswith("`") else f"{ticks}{text}{ticks}"


def md_fence(text: str) -> str:
    """`text` in a fenced block longer than any run of backticks inside it."""
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text.rstrip()}\n{fence}"


@functools.cache
def environment(html: bool = True):
    """The environment for HTML pages (autoescaped) or, with html=False, for Markdown."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("kit.grader", "templates"), autoescape=html,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md_text, code=md_code, fence=md_fence)
    return env
