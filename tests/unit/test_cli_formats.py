"""The CLI's pure pieces: `--since` times, tables cut to a width, the views of listings,
how an HTTP error becomes an exit status, and the progress line."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from gateway.cli import views
from gateway.cli.client import failure
from gateway.cli.errors import ExitCode, UsageError
from gateway.cli.progress import LARGE_BYTES, CountingReader, Progress, human_size, progress_text
from gateway.cli.tables import Column, cut, fit, render
from gateway.cli.timeparse import iso, parse_since

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - 30),
        ("10m", NOW - 600),
        ("2h", NOW - 7200),
        ("1d", NOW - 86400),
        ("1w", NOW - 7 * 86400),
        ("1.5h", NOW - 5400),
        ("2026-05-01", datetime(2026, 5, 1, tzinfo=UTC).timestamp()),
        ("2026-05-01T12:00:00Z", datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp()),
        ("2026-05-01T14:00:00+02:00", datetime(2026, 5, 1, 12, tzinfo=UTC).timestamp()),
        ("1790000000", 1_790_000_000.0),
    ],
)
def test_since_takes_durations_iso_times_and_epochs(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "ten minutes", "10y", "2026-13-01", "-5m"])
def test_since_refuses_anything_else_as_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--since takes"):
        parse_since(text, NOW)


def test_iso_is_utc_to_the_second() -> None:
    assert (
        iso(datetime(2026, 5, 1, 12, 3, 4, 900, tzinfo=UTC).timestamp()) == "2026-05-01T12:03:04Z"
    )
    assert iso(None) == ""


def test_a_table_aligns_its_columns_and_right_aligns_numbers() -> None:
    lines = render([Column("name"), Column("calls", True)], [["a", 3], ["longer", 12]])
    assert lines == ["NAME    CALLS", "a           3", "longer     12"]
    assert render([Column("name")], []) == []  # an empty listing prints nothing


def test_a_table_is_cut_to_the_width_widest_column_first() -> None:
    rows = [["short", "x" * 60, "tail"]]
    lines = render([Column("a"), Column("b"), Column("c")], rows, width=40)
    assert all(len(line) <= 40 for line in lines)
    assert lines[1].startswith("short  ") and lines[1].endswith("tail")
    assert "…" in lines[1]
    assert fit([5, 60, 4], [4, 4, 4], 40) == [5, 27, 4]
    assert cut("abcdef", 4) == "abc…" and cut("abc", 4) == "abc"


def test_a_narrow_terminal_still_gets_lines_no_wider_than_it() -> None:
    lines = render([Column("first"), Column("second")], [["a" * 30, "b" * 30]], width=12)
    assert all(len(line) <= 12 for line in lines)


def test_views_of_listings() -> None:
    alias = {"name": "c", "version": None, "versions": {"10": 0.25, "9": 0.75}}
    assert views.split_text(alias) == "9=0.75,10=0.25"
    assert views.split_text({"name": "p", "version": 3, "versions": {"3": 1.0}}) == "3"
    act = {
        "activation_id": "a1",
        "function": "f",
        "version": 2,
        "status": "success",
        "start": NOW,
        "duration_ms": 1.25,
        "cold_start": True,
        "logs": ["one", "two"],
    }
    assert views.activation_line(act) == ["a1  f  2  success  2027-01-15T08:00:00Z  1.2 ms  yes"]
    assert views.log_lines(act) == ["a1  one", "a1  two"]
    record = views.record({"name": "t", "created": NOW, "config": {"a": 1}}, None)
    assert record == ["name     t", "created  2027-01-15T08:00:00Z", 'config   {"a": 1}']


@pytest.mark.parametrize(
    ("status", "payload", "code"),
    [
        (400, {"error": {"message": "bad", "field": "memory_mb"}}, ExitCode.ERROR),
        (401, {"error": {"message": "invalid API key"}}, ExitCode.AUTH),
        (403, {"error": {"message": "admin only"}}, ExitCode.AUTH),
        (404, {"error": {"message": "function 'x' not found"}}, ExitCode.NOT_FOUND),
        (404, {"error": "The requested resource does not exist.", "code": 7}, ExitCode.NOT_FOUND),
        (409, {"error": {"message": "not empty"}}, ExitCode.ERROR),
        (
            502,
            {"error": {"message": "boom", "type": "application_error"}},
            ExitCode.FUNCTION_FAILED,
        ),
        (504, {"error": {"message": "late", "type": "timeout"}}, ExitCode.FUNCTION_FAILED),
        (503, {"error": {"message": "down", "type": "platform_error"}}, ExitCode.ERROR),
        (500, "<html>\n oops \n</html>", ExitCode.ERROR),
    ],
)
def test_an_http_error_is_one_line_and_an_exit_status(
    status: int, payload: object, code: ExitCode
) -> None:
    error = failure(status, payload)
    assert error.code == code
    assert str(error).startswith(f"error {status}: ") and "\n" not in str(error)


def test_the_error_line_names_the_field_and_the_activation() -> None:
    error = failure(502, {"error": {"message": "boom", "activation_id": "a1"}})
    assert str(error) == "error 502: boom (activation a1)"
    assert str(failure(400, {"error": {"message": "m", "field": "f"}})) == "error 400: m (field: f)"


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_for_large_transfers_only() -> None:
    assert human_size(512) == "512 B" and human_size(3 * 2**20) == "3.0 MiB"
    assert (
        progress_text("put k", 2**20, 4 * 2**20, 1.0) == "put k  1.0 MiB / 4.0 MiB   25%  1.0 MiB/s"
    )
    ticks = iter(float(t) for t in range(100))
    screen = Tty()
    shown = Progress("put k", 2 * LARGE_BYTES, screen, clock=lambda: next(ticks))
    reader = CountingReader(io.BytesIO(b"x" * 2 * LARGE_BYTES), shown)
    while reader.read(LARGE_BYTES // 2):
        pass
    shown.finish()
    drawn = screen.getvalue()
    assert "100%" in drawn and drawn.endswith("\n") and drawn.count("\r") >= 4
    for stream, total in ((io.StringIO(), 2 * LARGE_BYTES), (Tty(), 1000)):
        quiet = Progress("get k", total, stream)
        quiet.advance(total)
        quiet.finish()
        assert stream.getvalue() == ""
