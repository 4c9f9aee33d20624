"""Reading delimited label files (item, labeler, label rows; item, truth rows): pure, no Django.

Real crowd files mix LF, CRLF and old-Mac CR-only line endings, may start with a byte-order
mark and may lack a final newline; these readers cope with all of them. Rows are numbered by
the line they start on in the file (the header is line 1), so a rejected row can be found in an
editor. Cells are kept as text: ids are never interpreted (in D_Product they even end in the
truth).

A row the csv module cannot read (a cell over its field size limit) and a cell holding a control
character (text_rules) are row errors: the rest of the file still loads. A NUL on the first line
means a binary file (or UTF-16 without its byte-order mark), refused whole.
"""

import codecs
import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

from .text_rules import control_character_problem

# Delimiters a shell user can type; anything else must be a single character.
DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|", "space": " "}
_INTEGER = re.compile(r"-?[0-9]+")


class ParseError(ValueError):
    """The file as a whole cannot be read; the message is a predicate for the file's name."""


@dataclass(frozen=True)
class Record:
    line: int
    values: tuple[str, ...]  # one stripped, non-empty cell per role, in the order of the roles
    # What a labelled-dataset file (Label Studio, Concord JSONL) adds to an annotation row.
    unsure: bool = False
    note: str = ""


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
    first_line = text.split("\n", 1)[0]
    if "\x00" in first_line:
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
        header_line = None
        for line, cells, problem in lines:
            if problem:
                raise ParseError(f"has a header that cannot be read at line {line}: {problem}")
            if any(c.strip() for c in cells):
                header_line = cells
                break
        indices = _column_indices(header_line, columns) if columns else range(len(roles))
    else:
        indices = range(len(roles))
    needed = max(indices) + 1

    records, errors = [], []
    for line, cells, problem in lines:
        if problem:
            errors.append(row_error(line, "row", problem))
            continue
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
        bad = next(((i, p) for i, p in enumerate(map(control_character_problem, values)) if p), None)
        if bad is not None:
            errors.append(row_error(line, roles[bad[0]], f"the {roles[bad[0]]} ({names[bad[0]]!r}) {bad[1]}"))
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
    """Yield (first line number, cells, None) per CSV record, or (line, None, message) for one the
    csv module cannot read (it goes on at the next line). A quoted cell may span lines."""
    # newline="" splits lines at LF, CRLF and a lone CR alike, and keeps quoted newlines intact.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field limit" in str(exc):
                message = f"has a cell longer than {csv.field_size_limit():,} characters, the most a cell may hold"
            else:
                message = f"cannot be read as delimited text: {exc}"
            yield start, None, message
        else:
            yield start, cells, None
        start = reader.line_num + 1


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
