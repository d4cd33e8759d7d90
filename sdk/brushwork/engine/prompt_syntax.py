"""A1111 prompt-weight syntax, parsed into (text, weight) fragments (stdlib only, no torch).

What artists type, and what it means (the same as AUTOMATIC1111's ``parse_prompt_attention``):

    (word:1.3)   weight 1.3          (word)   x1.1        ((word))  x1.21
    [word]       /1.1                \\( \\) \\[ \\]  literal brackets     \\\\  a literal backslash
    a BREAK b    ``b`` starts a new 77-token chunk (BREAK in capitals, as a whole word)

Groups nest and multiply. Unbalanced brackets never raise: an unclosed ``(`` or ``[`` applies its
x1.1 or /1.1 to the rest of the prompt, a stray ``)`` or ``]`` is kept as text, exactly as A1111
does. Where A1111 itself would crash or misbehave we stay calm instead:

  - ``(a:1.2.3)`` or ``(a:.)``: not a number, so ``:1.2.3`` stays text and ``)`` closes a x1.1 group
    (A1111 raises ValueError on ``float("1.2.3")``);
  - weights are clamped into [MIN_WEIGHT, MAX_WEIGHT] so they stay positive and finite even for
    ``(a:0)``, ``(a:-1)``, ``(a:99999...)`` or hundreds of nested brackets;
  - a lone backslash before an ordinary character is kept (A1111 drops it), so Windows paths and
    emoticons survive;
  - BREAK inside brackets still breaks (A1111 turns it into the word "break" with a negative weight).
"""

from __future__ import annotations

import math
import re

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
# (word:0) is how some people "mute" a word: keep it near zero but positive, so the mean-restoring
# weighting in prompts.py never divides by zero. 100 is far past where CLIP embeddings stop meaning
# anything; the cap only keeps hostile input finite.
MIN_WEIGHT = 1e-3
MAX_WEIGHT = 100.0

Fragment = tuple[str, float]

_TOKENS = re.compile(
    r"""
    \\[()\[\]\\]                          # escaped bracket or backslash: literal
  | \\                                    # a lone backslash: literal (see module doc)
  | \(
  | \[
  | :\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)   # ":1.3)" closes a round group with an explicit weight
  | \)
  | ]
  | [^\\()\[\]:]+                         # plain text
  | :
    """,
    re.X,
)
_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_BREAK_MARK = object()  # stands for a BREAK inside the parser's working list


def _clamp(weight: float) -> float:
    if math.isnan(weight):
        return 1.0
    return min(MAX_WEIGHT, max(MIN_WEIGHT, weight))


def _parse(text: str) -> list:
    """The working list: [text, weight] pairs and _BREAK_MARK entries, weights not yet merged."""
    res: list = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for item in res[start:]:
            if item is not _BREAK_MARK:
                item[1] *= multiplier

    for match in _TOKENS.finditer(text):
        piece, weight = match.group(0), match.group(1)
        if piece.startswith("\\"):
            res.append([piece[1:] if len(piece) == 2 else piece, 1.0])
        elif piece == "(":
            round_open.append(len(res))
        elif piece == "[":
            square_open.append(len(res))
        elif weight is not None and round_open:
            try:
                value = float(weight)
            except ValueError:  # the regex admits only numbers; belt and braces
                value = ROUND_MULTIPLIER
            multiply_from(round_open.pop(), _clamp(value))
        elif piece == ")" and round_open:
            multiply_from(round_open.pop(), ROUND_MULTIPLIER)
        elif piece == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:
            for i, part in enumerate(_BREAK.split(piece)):
                if i > 0:
                    res.append(_BREAK_MARK)
                if part:
                    res.append([part, 1.0])
    # Unclosed groups act on everything after them (A1111).
    for start in round_open:
        multiply_from(start, ROUND_MULTIPLIER)
    for start in square_open:
        multiply_from(start, SQUARE_MULTIPLIER)
    return res


def _merge(items: list) -> list[Fragment]:
    """Join neighbours of equal weight (as A1111 does), clamp weights, drop empty text."""
    out: list[list] = []
    for text, weight in items:
        weight = _clamp(weight)
        if not text:
            continue
        if out and out[-1][1] == weight:
            out[-1][0] += text
        else:
            out.append([text, weight])
    return [(text, weight) for text, weight in out]


def parse_prompt_sections(text: str) -> list[list[Fragment]]:
    """The prompt split at each BREAK; every section is a list of (text, weight) fragments.

    Always at least one section (one more than there are BREAKs); a section with no text is
    ``[("", 1.0)]``. Which sections become chunks is prompts.prompt_chunks' business (A1111's
    rule: a BREAK closes the chunk being filled, even an empty one; a trailing one adds nothing).
    """
    sections: list[list] = [[]]
    for item in _parse(text):
        if item is _BREAK_MARK:
            sections.append([])
        else:
            sections[-1].append(item)
    return [_merge(items) or [("", 1.0)] for items in sections]


def parse_prompt(text: str) -> list[Fragment]:
    """(text, weight) fragments of the whole prompt, BREAKs left out (see parse_prompt_sections).

    >>> parse_prompt("a (red:1.5) [cat]")
    [('a ', 1.0), ('red', 1.5), ('cat', 0.9090909090909091)]
    """
    items = [item for item in _parse(text) if item is not _BREAK_MARK]
    return _merge(items) or [("", 1.0)]


def has_weights(text: str) -> bool:
    """True if any fragment of the prompt is weighted other than 1.0."""
    return any(weight != 1.0 for section in parse_prompt_sections(text) for _, weight in section)
