"""The training domain's errors, and how a failure is told to a person (a note refused when too
long, an exception turned into the error a failed version shows)."""

from __future__ import annotations

from annotation import errors
from annotation.errors import DomainError

from .conf import ERROR_CHARS


class TrainingError(DomainError):
    """A training request or run the domain refuses (bad trainer, no labels, ...)."""


class Conflict(TrainingError, errors.Conflict):
    """The model is not in a state that allows this (promote a failed model, roll back a model
    that is not current)."""


MAX_NOTE_CHARS = 500  # Promotion.note and ModelExport.override_note


def checked_note(note: str) -> str:
    """A promote, roll back or override note, refused (never cut) when longer than its column."""
    note = (note or "").strip()
    if len(note) > MAX_NOTE_CHARS:
        raise TrainingError(f"a note has at most {MAX_NOTE_CHARS} characters; this one has {len(note)}", "note")
    return note


class Superseded(Exception):
    """Another delivery of the same task has claimed the version; this run stops quietly."""


def readable_error(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        text = exc.message
    elif isinstance(exc, ValueError | MemoryError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        text = f"{type(exc).__name__}: {exc} (the worker log has the traceback)"
    return text[:ERROR_CHARS]
