import pytest

from shared.errors import InvalidRequest, SourceNotFound
from shared.fetch.filters import row_restriction
from shared.messages import Predicate

TYPES = {"units": "INT64", "price": "FLOAT64", "region": "STRING", "date": "DATE", "promo": "BOOL"}


def p(column, op, *values):
    return Predicate(column=column, op=op, values=list(values))


def test_every_operator_renders_typed_literals():
    expr = row_restriction(
        [
            p("units", ">", 0),
            p("price", "<=", 2.5),
            p("region", "in", "north", "south"),
            p("date", "between", "2024-01-01", "2024-03-31"),
            p("promo", "=", True),
            p("region", "not in", "west"),
            p("units", "is not null"),
        ],
        TYPES,
    )
    assert expr == (
        "`units` > 0 AND `price` <= 2.5 AND `region` IN ('north', 'south') AND "
        "(`date` >= DATE '2024-01-01' AND `date` <= DATE '2024-03-31') AND `promo` = TRUE AND "
        "NOT (`region` IN ('west')) AND `units` IS NOT NULL"
    )


def test_no_predicates_means_no_restriction():
    assert row_restriction([], TYPES) == ""


def test_string_values_cannot_break_out_of_their_literal():
    expr = row_restriction([p("region", "=", "x' OR '1'='1")], TYPES)
    assert expr == "`region` = 'x\\' OR \\'1\\'=\\'1'"


@pytest.mark.parametrize(
    "pred",
    [
        p("units", "=", "1 OR 1=1"),
        p("units", "=", 1.5),
        p("units", "=", True),
        p("price", "=", "cheap"),
        p("date", "=", "2024-13-01"),
        p("date", "=", "2024-01-01' OR '1'='1"),
        p("promo", "=", 1),
    ],
)
def test_values_must_fit_the_column_type(pred):
    with pytest.raises(InvalidRequest, match=pred.column):
        row_restriction([pred], TYPES)


def test_unknown_column_is_named():
    with pytest.raises(SourceNotFound, match="'nope'"):
        row_restriction([p("nope", "=", 1)], TYPES)
