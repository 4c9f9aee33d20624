"""What text Concord accepts, in one place: pure functions, no Django.

One rule for every piece of text that comes in (a request's query string, form fields and JSON
body; a cell or value of an imported file): NUL and the other C0 control characters are refused,
except tab, newline and carriage return, which real text holds. PostgreSQL cannot store NUL in
text or JSON at all (it answers an error, which would be a 500), and the rest are invisible in a
page and mean nothing in a label, a note or an id. Refused, not stripped: silently changing what
someone typed or imported would hide the problem from them.

Short labels (class and project names) are held to more: direction overrides and zero-width
characters make two different names look the same (or one look like another) on screen, so they
are refused there. Free text (notes, guidelines, item text) keeps them: right-to-left scripts
need the direction marks.

Integers stored in PostgreSQL `integer` columns (PositiveIntegerField: seeds, random states) fit
in [0, MAX_INT32].
"""

import unicodedata
from collections.abc import Iterator

MAX_INT32 = 2**31 - 1

_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
# C0 controls, and lone surrogates (JSON's "\ud800" decodes to one; it is not text and cannot
# be encoded to UTF-8 for the database either).
_REFUSED_CONTROLS = (frozenset(chr(c) for c in range(0x20)) - _ALLOWED_CONTROLS) | frozenset(
    chr(c) for c in range(0xD800, 0xE000)
)
# Characters that change the order text is shown in, or take no room: visual spoofing in a name.
SPOOFING_CHARACTERS = frozenset(
    "\u061c"  # ARABIC LETTER MARK
    "\u200b\u200c\u200d"  # ZERO WIDTH SPACE, NON-JOINER, JOINER
    "\u200e\u200f"  # LEFT-TO-RIGHT / RIGHT-TO-LEFT MARK
    "\u202a\u202b\u202c\u202d\u202e"  # embeddings and overrides
    "\u2060"  # WORD JOINER
    "\u2066\u2067\u2068\u2069"  # isolates
    "\ufeff"  # ZERO WIDTH NO-BREAK SPACE (byte-order mark)
)


def _describe(char: str) -> str:
    """'the control character U+0000 (NUL)', 'the invisible character U+202E (RIGHT-TO-LEFT OVERRIDE)'."""
    code = ord(char)
    if 0xD800 <= code < 0xE000:
        return f"the unpaired surrogate U+{code:04X}"
    if code < 0x20:
        return f"the control character U+{code:04X}" + (" (NUL)" if code == 0 else "")
    return f"the invisible character U+{code:04X} ({unicodedata.name(char, 'unnamed')})"


def printable(value: str) -> str:
    """`value` with refused characters written as escapes (\\x00), safe to store and show."""
    if _REFUSED_CONTROLS.isdisjoint(value):
        return value
    return "".join(c.encode("unicode_escape").decode() if c in _REFUSED_CONTROLS else c for c in value)


def control_character_problem(value: str) -> str | None:
    """A message naming the first refused control character in `value` and where it is, or None."""
    if _REFUSED_CONTROLS.isdisjoint(value):
        return None  # the common case: one C-level pass per string
    position, char = next((i, c) for i, c in enumerate(value) if c in _REFUSED_CONTROLS)
    return (
        f"holds {_describe(char)} at position {position + 1}; "
        "control characters other than tab and line breaks are not accepted"
    )


def short_label_problem(value: str) -> str | None:
    """For class names and other short labels: control characters, direction overrides and
    zero-width characters are refused. A message, or None when the name is fine."""
    problem = control_character_problem(value)
    if problem:
        return problem
    if SPOOFING_CHARACTERS.isdisjoint(value):
        return None
    position, char = next((i, c) for i, c in enumerate(value) if c in SPOOFING_CHARACTERS)
    return (
        f"holds {_describe(char)} at position {position + 1}; direction "
        "overrides and zero-width characters are not accepted in names (they make names look alike)"
    )


def json_text_problems(data, path: str = "", top: str = "body") -> Iterator[tuple[str, str]]:
    """(field path, message) for every key or string value in parsed JSON that holds a refused
    control character. Paths read `note`, `classes[2]`, `metadata.noise`; a bad key is reported
    at its parent, the top level as `top`."""
    if isinstance(data, str):
        problem = control_character_problem(data)
        if problem:
            yield path or top, problem
    elif isinstance(data, dict):
        for key, value in data.items():
            key = str(key)
            child = f"{path}.{key}" if path else key
            problem = control_character_problem(key)
            if problem:
                yield (path or top), f"a key {problem}"
                continue
            yield from json_text_problems(value, child, top)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from json_text_problems(value, f"{path}[{index}]" if path else f"[{index}]", top)


def int32_problem(value: int, name: str = "value") -> str | None:
    """A message when `value` does not fit a non-negative PostgreSQL integer column, else None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} must be a whole number"
    if not 0 <= value <= MAX_INT32:
        return f"{name} must lie between 0 and {MAX_INT32:,} (2**31 - 1); got {value:,}"
    return None
