"""Messages and fixes read as written wherever Markdown renders them; the HTML report fits a phone."""

from __future__ import annotations

from dataclasses import replace
from html.parser import HTMLParser

import pytest

from analyzer.markdown_text import escape_markdown
from analyzer.report_types import Failed, Skipped
from analyzer.reports import html, markdown
from tests.fixtures.make_run import make_run

FIX = "no model matches; list them with list_models('*notamo*') or see [the docs](x) for `timm` names"


def _rendered(text: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")  # CommonMark, as GitHub and Streamlit render it
    return markdown_it.MarkdownIt("commonmark").enable("table").enable("strikethrough").render(text)


@pytest.mark.parametrize(
    "text",
    [FIX, "_leading_ and trailing_ underscores", "a ~~struck~~ <b>tag</b> a\\b", "does_not_exist <= 20M"],
)
def test_escaped_text_renders_as_the_plain_text_it_was(text):
    out = _rendered(escape_markdown(text))
    assert "<em>" not in out and "<code>" not in out and "<a " not in out and "<s>" not in out
    assert "<b>" not in out
    unescaped = out.removeprefix("<p>").removesuffix("</p>\n")
    assert __import__("html").unescape(unescaped) == text


def test_words_with_inner_underscores_stay_as_typed():
    assert (
        escape_markdown("does_not_exist mnist_lenet5_clntrained") == "does_not_exist mnist_lenet5_clntrained"
    )


def test_the_markdown_report_never_turns_a_fix_into_italics():
    result = make_run(n_models=3)
    model = result.models[0]
    result = replace(
        result,
        failed=[Failed(model="timm:notamodel", error=f"Problem: unknown model. Fix: {FIX}")],
        skipped=[Skipped(model=model, metric="leep", reason="needs *source* probabilities")],
    )
    out = _rendered(markdown.render(result))
    assert "<em>notamo</em>" not in out and "list_models('*notamo*')" in out
    assert "<em>source</em>" not in out and "needs *source* probabilities" in out


class _Meta(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.meta: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag == "meta" and "name" in found:
            self.meta[str(found["name"])] = str(found.get("content"))


def test_the_html_report_has_a_viewport_and_scrolls_its_tables_on_a_phone():
    page = html.render(make_run(n_models=3))
    parser = _Meta()
    parser.feed(page)
    assert parser.meta["viewport"] == "width=device-width, initial-scale=1"
    assert ".scroll{overflow-x:auto" in page
    assert page.count("<table>") == page.count("<div class='scroll'><table>") > 0
