"""flask_havn.members_csv: the one reader of team files (the CLI and ShopEasy both use it)."""
from __future__ import annotations

import subprocess
import sys
from typing import List, Tuple

import pytest

from flask_havn import HAVNValidationError
from flask_havn.members_csv import NOT_SENT, PENDING, MemberRow, decode, parse


def _summary(rows: List[MemberRow]) -> List[Tuple[int, str, str, str]]:
    return [(row.line, row.email, row.name, row.error or row.result) for row in rows]


def test_a_header_names_the_columns_in_any_order_and_case_and_other_columns_are_ignored() -> None:
    rows = parse("Notes,NAME,Email\nvip,Ann,ann@t.example\n,Ben,ben@t.example\n")
    assert _summary(rows) == [(2, "ann@t.example", "Ann", PENDING), (3, "ben@t.example", "Ben", PENDING)]


def test_without_a_header_every_line_is_email_then_name() -> None:
    rows = parse('ann@t.example,"Ann, Jr."\nben@t.example,Ben,extra\n')
    assert _summary(rows) == [
        (1, "ann@t.example", "Ann, Jr.", PENDING),
        (2, "ben@t.example", "Ben", "expected two columns, email,name (put a name with a comma in double quotes, "
                                    "or add a header line naming email and name to have other columns ignored)"),
    ]


def test_lines_count_blank_lines_and_multi_line_cells_and_each_bad_row_says_why() -> None:
    text = ('email,name\n\n"multi\nline@t.example",X\nok@t.example,Ok\n\n'
            "OK@t.example,Again\nnope,No\nnameless@t.example,\n")
    rows = parse(text)
    assert [(row.line, row.result) for row in rows] == [(4, NOT_SENT), (5, PENDING), (7, NOT_SENT), (8, NOT_SENT),
                                                        (9, NOT_SENT)]
    assert rows[2].error == "listed twice (also line 5)"
    assert rows[3].error.startswith("email must be a valid email address")
    assert rows[4].error.startswith("name ")


@pytest.mark.parametrize("text, reason", [
    ("", "has no members; put one person per line as email,name (a first line email,name is read as the header)"),
    ("email,name\n\n", "has no members"),
    ("mail,fullname\nx@t.example,X\n", "has a header line without the columns email and name (missing: email, "
                                       "name); make the first line email,name"),
    ('email,name\n"a@t.example,A\n', "is not valid CSV"),
])
def test_a_problem_of_the_whole_file_raises_on_file(text: str, reason: str) -> None:
    with pytest.raises(HAVNValidationError) as info:
        parse(text)
    assert info.value.field == "file" and info.value.reason.startswith(reason)


def test_max_rows_is_a_whole_file_problem() -> None:
    assert len(parse("a@t.example,A\nb@t.example,B\n", max_rows=2)) == 2
    with pytest.raises(HAVNValidationError, match="has more than 2 members; split it"):
        parse("a@t.example,A\nb@t.example,B\nc@t.example,C\n", max_rows=2)


def test_decode_takes_utf8_with_or_without_a_byte_order_mark_and_explains_anything_else() -> None:
    assert decode("\ufeffemail,name\nzoë@t.example,Zoë\n".encode("utf-8")) == "email,name\nzoë@t.example,Zoë\n"
    with pytest.raises(HAVNValidationError) as info:
        decode("email,name\nzoë@t.example,Zoë\n".encode("latin-1"))
    assert (info.value.field, info.value.reason) == ("file", "is not UTF-8 text; save it as CSV (UTF-8) and try again")


def test_it_needs_no_flask() -> None:
    # The module is shared by the CLI and by hosts' own upload code; it must not pull in the web stack.
    code = "import sys, flask_havn.members_csv; print(sorted(m for m in ('flask', 'sqlalchemy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
