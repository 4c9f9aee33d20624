"""Reading delimited label files (item, labeler, label rows; item, truth rows): pure, no Django.

Real crowd files mix LF, CRLF and old-Mac CR-only line endings, may start with a byte-order
mark and may lack a final newline; these readers cope with all of them. Rows are numbered by
the line they start on in the file (the header is line 1), so a rejected row can be found in an
editor. Cells are kept as text: ids are never interpreted (in D_Product they even end in the
truth).
"""

import codecs
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Delimiters a shell user can type; anything else must be a single character.
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
_INTEGER = re.compile(r"-?[0-9]+")


class ParseError(ValueError):
    """The file as a whole cannot be read; the message is a predicate for the file's name."""


@dataclass(frozen=True)
class Record:
    line: int
    values: tuple[str, ...]  # one stripped, non-empty cell per role, in the order of the roles


def parse_delimiter(value: str) -> str:
    """'TAB', '\\t', 'comma', ';' ... -> the delimiter character."""
    if value.lower() in DELIMITER_NAMES:
        return DELIMITER_NAMES[value.lower()]
    if len(value) == 1 and value not in '"\r\n':
        return value
    raise ValueError(f"delimiter {value!r} is not one character nor one of {', '.join(DELIMITER_NAMES)}")


def decode_text(data: bytes) -> str:
    """UTF-8 (a BOM is dropped) or BOM-marked UTF-16, as spreadsheet programs save 'Unicode text'."""
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = len(before.splitlines()) + (not before or before.endswith((b"\n", b"\r")))
        raise ParseError(
            f"is not UTF-8 text: byte {data[exc.start]:#04x} on line {line} cannot be decoded; save it as UTF-8"
        ) from exc
    if "\x00" in text:
        raise ParseError("holds NUL characters: it looks like a binary file, not delimited text")
    return text


def read_records(
    text: str,
    *,
    roles: Sequence[str],
    columns: Sequence[str] | None,
    has_header: bool,
    delimiter: str,
) -> tuple[list[Record], list[dict]]:
    """Split `text` into records holding one cell per role, and row errors for the rows that don't.

    `columns` names the header's column for each role (matched ignoring case and surrounding
    spaces); None, or a file without a header, takes the first len(roles) columns in order.
    Blank lines are ignored. Raises ParseError for an empty file or a missing column.
    """
    if not text.strip():
        raise ParseError("is empty")
    names = list(columns) if columns else list(roles)
    lines = _numbered_rows(text, delimiter)
    if has_header:
        header_line = next((cells for _, cells in lines if any(c.strip() for c in cells)), None)
        indices = _column_indices(header_line, columns) if columns else range(len(roles))
    else:
        indices = range(len(roles))
    needed = max(indices) + 1

    records, errors = [], []
    for line, cells in lines:
        if not any(c.strip() for c in cells):
            continue
        if len(cells) < needed:
            errors.append(row_error(line, "row", f"has {len(cells)} column(s); {needed} are needed"))
            continue
        values = tuple(cells[i].strip() for i in indices)
        empty = next((i for i, v in enumerate(values) if not v), None)
        if empty is not None:
            errors.append(row_error(line, roles[empty], f"the {roles[empty]} ({names[empty]!r}) is empty"))
            continue
        records.append(Record(line, values))
    if not records and not errors:
        raise ParseError("has a header but no data rows" if has_header else "is empty")
    return records, errors


def row_error(line: int, field: str, message: str) -> dict:
    return {"row": line, "field": field, "message": message}


def sort_class_names(names) -> list[str]:
    """Numerically when every name is an integer ('2' before '10'), else alphabetically."""
    names = set(names)
    if all(_INTEGER.fullmatch(n) for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _numbered_rows(text, delimiter):
    """Yield (first line number, cells) per CSV record; a quoted cell may span lines."""
    # newline="" splits lines at LF, CRLF and a lone CR alike, and keeps quoted newlines intact.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ParseError(f"cannot be read as delimited text at line {reader.line_num}: {exc}") from exc


def _column_indices(header, columns):
    if header is None:
        raise ParseError("is empty")
    found = [h.strip().casefold() for h in header]
    indices = []
    for name in columns:
        matches = [i for i, h in enumerate(found) if h == name.strip().casefold()]
        if not matches:
            raise ParseError(f"has no column {name!r} (its header has: {', '.join(h.strip() for h in header)})")
        if len(matches) > 1:
            raise ParseError(f"has {len(matches)} columns named {name!r}; rename one")
        indices.append(matches[0])
    return indices
