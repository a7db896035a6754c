"""The SEARCH/REPLACE reply format: parsing, applying, and the feedback its errors carry."""

from __future__ import annotations

import pytest

from mutators.edits import Edit, EditError, apply_edits, parse_reply

SOURCE = "A = 1  # one\nB = 2\n\ndef f():\n    return A + B\n"


def _block(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_reply_with_description_and_blocks_is_parsed_in_order():
    text = "DESCRIPTION: bump both\n\n" + _block("A = 1  # one\n", "A = 3  # one\n") + _block("B = 2\n", "B = 4\n")
    parsed = parse_reply(text)
    assert parsed.description == "bump both"
    assert parsed.edits == (Edit("A = 1  # one\n", "A = 3  # one\n"), Edit("B = 2\n", "B = 4\n"))
    assert apply_edits(SOURCE, parsed.edits) == SOURCE.replace("A = 1", "A = 3").replace("B = 2", "B = 4")


def test_search_that_differs_only_in_trailing_whitespace_still_applies():
    edited = apply_edits(SOURCE, (Edit("def f():   \n    return A + B\n", "def f():\n    return A * B\n"),))
    assert edited.endswith("return A * B\n")


def test_search_that_does_not_match_names_the_block_and_its_first_line():
    with pytest.raises(EditError, match=r"SEARCH block 2 does not match .*'C = 5'"):
        apply_edits(SOURCE, (Edit("B = 2\n", "B = 3\n"), Edit("C = 5\n", "C = 6\n")))


def test_search_that_matches_twice_asks_for_more_context():
    with pytest.raises(EditError, match="matches 2 places"):
        apply_edits("x = 1\nx = 1\n", (Edit("x = 1\n", "x = 2\n"),))


def test_full_file_in_a_python_fence_is_the_fallback():
    parsed = parse_reply("DESCRIPTION: rewrite\n```python\nimport harness\nprint(1)\n```\nthanks")
    assert parsed.full_source == "import harness\nprint(1)\n" and parsed.edits == ()


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        ("I think we should raise the learning rate.", "no `DESCRIPTION"),
        ("DESCRIPTION: idea\nJust prose, no edits.", "no SEARCH/REPLACE blocks"),
        ("DESCRIPTION: x\n<<<<<<< SEARCH\nA = 1\n", "has no ======= line"),
        ("DESCRIPTION: x\n<<<<<<< SEARCH\nA = 1\n=======\nA = 2\n", "has no >>>>>>> REPLACE"),
        ("DESCRIPTION: x\n<<<<<<< SEARCH\n=======\nA = 2\n>>>>>>> REPLACE\n", "is empty"),
    ],
)
def test_unusable_replies_raise_an_error_meant_as_feedback(reply, problem):
    with pytest.raises(EditError, match=problem):
        parse_reply(reply)


def test_markdown_bold_description_is_accepted():
    parsed = parse_reply("**DESCRIPTION:** deeper model\n" + _block("A = 1  # one\n", "A = 2  # one\n"))
    assert parsed.description == "deeper model"
