"""A1111 prompt-weight parsing (pure, no torch)."""

from __future__ import annotations

import math

import pytest
from brushwork.engine.prompt_syntax import (
    MAX_WEIGHT,
    MIN_WEIGHT,
    has_weights,
    parse_prompt,
    parse_prompt_sections,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def approx(fragments):
    return [(text, pytest.approx(weight)) for text, weight in fragments]


# The examples from A1111's own parse_prompt_attention docstring: we must agree with all of them.
@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("normal text", [("normal text", 1.0)]),
        ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
        ("(unbalanced", [("unbalanced", 1.1)]),
        (r"\(literal\]", [("(literal]", 1.0)]),
        ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
        (
            "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
            [("a ", 1.0), ("house", 1.573), (" ", 1.1), ("on", 1.0), (" a ", 1.1), ("hill", 0.55),
             (", sun, ", 1.1), ("sky", 1.4641), (".", 1.1)],
        ),
    ],
)
def test_agrees_with_a1111_reference_examples(prompt, expected):
    assert parse_prompt(prompt) == approx(expected)


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("(word:1.3)", [("word", 1.3)]),
        ("(word)", [("word", 1.1)]),
        ("((word))", [("word", 1.21)]),
        ("[word]", [("word", 1 / 1.1)]),
        ("[[word]]", [("word", 1 / 1.21)]),
        ("(a (b:2) c)", [("a ", 1.1), ("b", 2.2), (" c", 1.1)]),
        ("( word : 1.5 )", [(" word ", 1.5)]),
        ("(word:.5)", [("word", 0.5)]),
        ("(word:+2)", [("word", 2.0)]),
        ("[(word:1.5)]", [("word", 1.5 / 1.1)]),
    ],
)
def test_weights(prompt, expected):
    assert parse_prompt(prompt) == approx(expected)


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("a) b", [("a) b", 1.0)]),  # a stray closer is text
        ("a] b", [("a] b", 1.0)]),
        ("[unclosed", [("unclosed", 1 / 1.1)]),
        ("x (y [z", [("x ", 1.0), ("y ", 1.1), ("z", 1.0)]),  # 1.1 / 1.1
        ("a:1.2) b", [("a:1.2) b", 1.0)]),  # explicit weight with no open group stays text
        ("(a:1.2.3)", [("a:1.2.3", 1.1)]),  # A1111 crashes here; we treat it as text in a group
        ("(a:.)", [("a:.", 1.1)]),
        ("time: 5pm", [("time: 5pm", 1.0)]),
        (r"a \\ b", [("a \\ b", 1.0)]),  # escaped backslash
        ("C:\\dir\\x", [("C:\\dir\\x", 1.0)]),  # lone backslashes survive
        (r"\(", [("(", 1.0)]),
    ],
)
def test_unbalanced_and_odd_input(prompt, expected):
    assert parse_prompt(prompt) == approx(expected)


def test_weights_are_clamped_positive_and_finite():
    assert parse_prompt("(a:0)") == [("a", MIN_WEIGHT)]
    assert parse_prompt("(a:-1)") == [("a", MIN_WEIGHT)]
    assert parse_prompt("(a:" + "9" * 400 + ")") == [("a", MAX_WEIGHT)]  # float() gives inf
    assert parse_prompt("(" * 500 + "a") == [("a", MAX_WEIGHT)]
    assert parse_prompt("[" * 500 + "a") == [("a", MIN_WEIGHT)]


def test_break_splits_sections():
    assert parse_prompt_sections("a cat BREAK a dog") == [[("a cat", 1.0)], [("a dog", 1.0)]]
    assert parse_prompt_sections("(red BREAK blue:1.5)") == [[("red", 1.5)], [("blue", 1.5)]]
    # empty sections still exist: they become empty chunks
    assert parse_prompt_sections("BREAK") == [[("", 1.0)], [("", 1.0)]]
    # only the whole capitalised word breaks
    assert parse_prompt_sections("BREAKING break") == [[("BREAKING break", 1.0)]]
    assert parse_prompt("a BREAK b") == [("ab", 1.0)]


def test_empty_prompt():
    assert parse_prompt("") == [("", 1.0)]
    assert parse_prompt_sections("") == [[("", 1.0)]]
    assert parse_prompt("()") == [("", 1.0)]


def test_has_weights():
    assert not has_weights("a plain prompt, with commas: and colons")
    assert not has_weights("a BREAK b")
    assert has_weights("a (b)")
    assert has_weights("[b]")


prompt_text = st.text(alphabet=st.sampled_from(list("ab :.,()[]\\0123456789-+ BREAK")) | st.characters(),
                      max_size=80)


@settings(max_examples=400, deadline=None)
@given(prompt_text)
def test_never_raises_and_weights_positive(text):
    for section in parse_prompt_sections(text):
        assert section
        for fragment, weight in section:
            assert isinstance(fragment, str)
            assert math.isfinite(weight) and MIN_WEIGHT <= weight <= MAX_WEIGHT
    for _fragment, weight in parse_prompt(text):
        assert weight > 0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="()[]\\"), max_size=120))
def test_plain_text_round_trips(text):
    if "BREAK" in text:
        return
    assert parse_prompt(text) == [(text, 1.0)]
    assert parse_prompt_sections(text) == [[(text, 1.0)]]
