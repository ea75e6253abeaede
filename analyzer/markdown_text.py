"""Plain text made safe for Markdown: a message or a fix (``list_models('*notamo*')``) reads as written.

report.md and every dashboard element that renders Markdown (``st.markdown``, ``st.error``, ``st.subheader``, ...)
pass user and error text through :func:`escape_markdown`, so an asterisk, backtick or bracket in a model name,
path or fix never turns into italics, code or a link. Pure function, no I/O.
"""

from __future__ import annotations

import re

#: characters that start inline formatting wherever they stand: emphasis and code (``*``, backtick), links
#: (brackets), strike-through (``~``), Streamlit's LaTeX (``$``), table cells (``|``) and the escape itself
_ALWAYS = re.compile(r"([\\`*\[\]~$|])")
#: ``_`` emphasises only at a word's edge (``does_not_exist`` stays as typed); ``<`` only before a tag-like name
_EDGE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def escape_markdown(text: str) -> str:
    """``text`` with every Markdown special that would change how it reads backslash-escaped; renders as ``text``.

    >>> escape_markdown("list_models('*notamo*')")
    "list_models('\\\\*notamo\\\\*')"
    """
    text = _ALWAYS.sub(r"\\\1", text)
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    return _TAG_OPEN.sub(r"\\<", text)
