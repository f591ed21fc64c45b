"""Argument types shared by the command lines."""

from __future__ import annotations

import argparse

import pytest

from tideflow.core.arguments import (
    integer_in,
    key_value,
    pool_size,
    positive_number,
    priority_rule,
    seconds,
)


def test_good_values_parse() -> None:
    assert positive_number("0.5") == 0.5
    assert seconds("0") == 0.0
    assert integer_in(1, 10)("10") == 10
    assert pool_size("3") == (3, 3)
    assert pool_size("1,4") == (1, 4)
    assert priority_rule("urgent/*=10") == ("urgent/*", 10)
    assert priority_rule("urgent/*") == ("urgent/*", 1)
    assert key_value("--catalog")("uri=sqlite:///c.db?x=1") == ("uri", "sqlite:///c.db?x=1")


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (positive_number, "0", "a number > 0"),
        (positive_number, "nan", "a number > 0"),
        (positive_number, "fast", "a number > 0"),
        (seconds, "-1", "seconds >= 0"),
        (integer_in(1, 10), "11", "an integer from 1 to 10"),
        (integer_in(1, 10), "2.5", "an integer from 1 to 10"),
        (pool_size, "0", "N or MIN,MAX"),
        (pool_size, "4,2", "N or MIN,MAX"),
        (pool_size, "1,2,3", "N or MIN,MAX"),
        (priority_rule, "urgent/*=high", "GLOB=INTEGER"),
        (priority_rule, "=5", "GLOB=INTEGER"),
        (priority_rule, "  ", "GLOB=INTEGER"),
        (key_value("--catalog"), "novalue", "--catalog 'novalue': expected KEY=VALUE"),
        (key_value("--catalog"), "=x", "expected KEY=VALUE"),
    ],
)
def test_bad_values_name_what_was_expected(parse, text: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(argparse.ArgumentTypeError, match="expected") as caught:
        parse(text)
    assert expected in str(caught.value) and repr(text) in str(caught.value)


def test_argparse_refuses_a_bad_value_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="tool")
    parser.add_argument("--port", type=integer_in(1, 65535))
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--port", "70000"])
    assert caught.value.code == 2
    assert "expected an integer from 1 to 65535; got '70000'" in capsys.readouterr().err
