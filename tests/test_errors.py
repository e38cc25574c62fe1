"""Errors built from what a remote process sent show its text cut and escaped: one line, no terminal control."""

from __future__ import annotations

from flask_multi_redis.errors import Overloaded, RemoteError, printable, remote_error


def test_printable_text_is_left_as_it_is() -> None:
    assert printable("a plain message, with ünïcode", 100) == "a plain message, with ünïcode"


def test_control_characters_are_escaped_and_long_text_cut() -> None:
    assert printable("line one\nline two\x1b[2J\t", 100) == "line one\\nline two\\x1b[2J\\t"
    assert printable("x" * 50, 10) == "x" * 10 + "..."


def test_a_remote_error_is_one_line_whatever_the_remote_side_wrote() -> None:
    error = remote_error("ValueError\n2026-12-01 ERROR forged", "bad\nworse " + "y" * 5000, "web@h:1\r")
    assert type(error) is RemoteError
    assert "\n" not in str(error)
    assert "\r" not in str(error)
    assert len(str(error)) < 2200
    assert error.remote_message.startswith("bad\nworse")  # the attribute keeps what was sent


def test_remote_error_picks_the_class_of_its_type() -> None:
    assert type(remote_error("Overloaded", "full")) is Overloaded
    assert type(remote_error("SomethingElse", "")) is RemoteError
