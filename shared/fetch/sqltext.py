"""Checks on user-supplied SQL: a fetch source query must be one read-only ``SELECT``.

A query source is trusted to read data (whoever may publish a fetch request may read), but not
to do anything else: it is wrapped as a subquery in ``CREATE TABLE ... AS SELECT``, so a second
statement smuggled after a ``;`` could otherwise run with the fetch service account's rights.
The scanner below knows BigQuery's quoting (', ", `, triple quotes, raw/bytes prefixes) and
comments (``--``, ``#``, ``/* */``), so a ``;`` inside a string is not mistaken for a separator.
"""

from __future__ import annotations

import re

from shared.errors import InvalidRequest

_FIRST_WORD = re.compile(r"\s*\(*\s*(\w+)", re.ASCII)


def _code_only(sql: str) -> str:
    """``sql`` with literals and quoted names as ``_`` and comments as spaces (same length)."""
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            quote = sql[i : i + 3] if sql[i : i + 3] in ("'''", '"""') else ch
            j = i + len(quote)
            while j < n and not sql.startswith(quote, j):
                j += 2 if sql[j] == "\\" and ch != "`" else 1
            if j >= n:
                raise InvalidRequest("query: unterminated string or quoted name")
            out.append("_" * (j + len(quote) - i))
            i = j + len(quote)
        elif sql.startswith("--", i) or ch == "#":
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise InvalidRequest("query: unterminated /* comment")
            out.append(" " * (j + 2 - i))
            i = j + 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def check_select(sql: str) -> str:
    """Return ``sql`` cut before a trailing ``;`` if it is a single SELECT (or WITH) statement."""
    code = _code_only(sql)
    end = len(code.rstrip())
    if code[:end].endswith(";"):
        end -= 1
    if ";" in code[:end]:
        raise InvalidRequest("query: only one statement is allowed (found ';' between statements)")
    first = _FIRST_WORD.match(code)
    if not first or first.group(1).upper() not in {"SELECT", "WITH"}:
        raise InvalidRequest("query: must be a SELECT (or WITH ... SELECT) statement")
    return sql[:end].rstrip()
