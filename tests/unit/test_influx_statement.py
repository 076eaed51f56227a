"""influx/statement.py: plain identifiers only, literals escaped, control characters refused."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from influx.statement import QueryBuildError, ident, string_literal


def test_identifiers_must_be_plain() -> None:
    assert ident("heart_rate") == '"heart_rate"'
    for bad in ('a"b', "a b", "1a", "", "a;b"):
        with pytest.raises(QueryBuildError):
            ident(bad)


@given(
    st.text(
        alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f")
    )
)
def test_string_literal_round_trips_through_influxql_escapes(value: str) -> None:
    literal = string_literal(value)
    assert literal[0] == literal[-1] == "'"
    body = literal[1:-1]
    # undo InfluxQL's two escapes; the result is the value, and no quote is left unescaped
    out, i = [], 0
    while i < len(body):
        if body[i] == "\\":
            assert body[i + 1] in "\\'"
            out.append(body[i + 1])
            i += 2
        else:
            assert body[i] != "'"
            out.append(body[i])
            i += 1
    assert "".join(out) == value


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "\x00", "a\x7f"])
def test_control_characters_are_refused_in_literals(value: str) -> None:
    with pytest.raises(QueryBuildError):
        string_literal(value)
