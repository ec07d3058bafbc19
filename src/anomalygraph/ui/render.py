"""Model text and report Markdown made safe for the page: raw HTML is escaped, never passed through,
and links are limited to http(s), mailto and relative ones (markdown-it's link check)."""

from __future__ import annotations

from functools import cache

from markdown_it import MarkdownIt


@cache
def _md() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable("table")


def markdown_html(text: str) -> str:
    """HTML for a model's answer or a report: any ``<script>`` or tag in ``text`` comes out as text."""
    return _md().render(text or "")
