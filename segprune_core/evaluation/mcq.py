"""Which option a model's free-text answer to a multiple-choice question picks.

Accepted, in order of trust: an explicit "answer is B" / "Answer: (B) dog"; a reply that starts with
a marked letter ("B", "(B)", "B)", "B."); the option's own text ("dog"); a lone "(B)" anywhere. A bare
capital at the start followed by a word is not taken as a letter ("A dog barks" is text, not option A).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase

# A letter counts when bracketed, or followed by ")", ".", ":", "," or the end ("answer is a dog" is text).
_MARKED_LETTER = r"(?:[\(\[]([A-Za-z])[\)\]]|([A-Za-z])(?=\s*(?:[\)\]\.:,;]|$)))"
_EXPLICIT = re.compile(r"\banswer\s*(?:is|:|-)?\s*(?:option\s*)?" + _MARKED_LETTER, re.IGNORECASE)
_LEADING = re.compile(r"^\s*(?:option\s*)?" + _MARKED_LETTER, re.IGNORECASE)
_PARENTHESIZED = re.compile(r"[\(\[]([A-Z])[\)\]]")


def option_letter(index: int) -> str:
    return LETTERS[index]


def format_options(choices: Sequence[str]) -> str:
    return "\n".join(f"({option_letter(i)}) {choice}" for i, choice in enumerate(choices))


def _normalize(text: str) -> str:
    text = text.lower().translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(text.split())


def _letter_index(letter: str, count: int) -> int | None:
    index = LETTERS.find(letter.upper())
    return index if 0 <= index < count else None


def parse_choice(response: str, choices: Sequence[str]) -> int | None:
    """Index of the chosen option, or None when the reply names none (or several) unambiguously."""
    count = len(choices)
    explicit = _EXPLICIT.search(response)
    if explicit and (index := _letter_index(explicit.group(1) or explicit.group(2), count)) is not None:
        return index
    leading = _LEADING.match(response)
    if leading and (index := _letter_index(leading.group(1) or leading.group(2), count)) is not None:
        return index
    if (index := _match_text(response, choices)) is not None:
        return index
    marked = {m for m in _PARENTHESIZED.findall(response) if _letter_index(m, count) is not None}
    if len(marked) == 1:
        return _letter_index(marked.pop(), count)
    return None


def _match_text(response: str, choices: Sequence[str]) -> int | None:
    """An option whose text the reply is, or the one option whose text it contains (as whole words).

    When several options appear and one contains the others ("hot dog" and "dog"), the longest wins.
    """
    reply = _normalize(response)
    options = [_normalize(c) for c in choices]
    exact = [i for i, option in enumerate(options) if option and option == reply]
    if len(exact) == 1:
        return exact[0]
    found = [i for i, option in enumerate(options) if option and re.search(rf"\b{re.escape(option)}\b", reply)]
    maximal = [i for i in found if not any(j != i and options[i] in options[j] for j in found)]
    return maximal[0] if len(maximal) == 1 else None
