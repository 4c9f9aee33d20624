"""Versioned guidelines: a draft (the unpublished next version), publishing, safe rendering, notes.

The draft is the project's one Guideline row with `published_at` empty; its version is the
latest published version + 1. Labelers only ever see published versions.
"""

import difflib
from urllib.parse import urlsplit

import markdown
import nh3
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.safestring import mark_safe

from ..errors import DomainError
from ..models import Guideline, GuidelineNote, Item
from .labeling import current_guideline

MAX_GUIDELINE_CHARS = 200_000
MAX_NOTE_CHARS = 5000
SAFE_URL_SCHEMES = {"http", "https", "mailto"}


# Characters a browser drops or rewrites inside a URL before resolving it.
_URL_NOISE = str.maketrans({"\t": "", "\n": "", "\r": "", "\\": "/"})


def same_origin_url(value):
    """Is `value` a URL that stays on this site (a path, no scheme, no host)? `//host/x`,
    `/\\host/x` and `https:x` are not: a browser resolves them to another origin."""
    url = (value or "").translate(_URL_NOISE).strip(" \x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x1f")
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return bool(url) and not parts.scheme and not parts.netloc and not url.startswith("//")


def _only_local_images(tag, attribute, value):
    """nh3 attribute filter: an image may only be loaded from this site, so a guideline cannot
    embed a tracking pixel that tells a third party who read it and when."""
    if tag == "img" and attribute == "src" and not same_origin_url(value):
        return None
    return value


def render_markdown(text):
    """Markdown to HTML that is safe to insert into a page: no raw HTML tags beyond nh3's
    allow-list, no event attributes, no `javascript:` URLs, images from this site only (an
    external image loses its `src`); links get rel="noopener noreferrer".
    Headings start at h3: the guideline sits inside a page that has its own h1 and h2."""
    html = markdown.markdown(
        text or "",
        extensions=["tables", "fenced_code", "sane_lists", "toc"],
        extension_configs={"toc": {"baselevel": 3}},
    )
    cleaned = nh3.clean(
        html, url_schemes=SAFE_URL_SCHEMES, link_rel="noopener noreferrer", attribute_filter=_only_local_images
    )
    # The one place user text becomes markup, and only after nh3 has cleaned it.
    return mark_safe(cleaned)  # noqa: S308


def diff_lines(old, new):
    """The line diff of `new` against `old` (unified, two lines of context) as (kind, line) pairs,
    kind one of "add", "del", "hunk", "ctx"; [] when they are equal."""
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    lines = difflib.unified_diff((old or "").splitlines(), (new or "").splitlines(), lineterm="", n=2)
    return [(kinds.get(line[:1], "ctx"), line) for line in lines if not line.startswith(("---", "+++"))]


def publish_preview(project, text):
    """What publishing `text` would do: the version it becomes, the published version it
    replaces (or None), the diff against that version and the rendered text."""
    text = _check_text(text)
    latest = current_guideline(project)
    top = Guideline.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
    pending = draft(project)
    return {
        "version": pending.version if pending is not None else top + 1,
        "published": latest,
        "diff": diff_lines(latest.text if latest else "", text),
        "html": render_markdown(text),
        "empty": not text.strip(),
    }


def draft(project):
    return Guideline.objects.filter(project=project, published_at__isnull=True).order_by("-version").first()


def _draft_for_update(project, author):
    existing = (
        Guideline.objects.select_for_update().filter(project=project, published_at__isnull=True).order_by("-version")
    ).first()
    if existing is not None:
        return existing
    latest = current_guideline(project)
    top = Guideline.objects.filter(project=project).aggregate(v=Max("version"))["v"] or 0
    return Guideline.objects.create(project=project, version=top + 1, text=latest.text if latest else "", author=author)


def _check_text(text, field_name="text"):
    if not isinstance(text, str):
        raise DomainError("the guideline text must be Markdown text", field_name)
    if len(text) > MAX_GUIDELINE_CHARS:
        raise DomainError(f"the guideline has at most {MAX_GUIDELINE_CHARS:,} characters", field_name)
    return text


def save_draft(project, author, text):
    """Write the draft (created from the latest published text when there is none)."""
    text = _check_text(text)
    with transaction.atomic():
        guideline = _draft_for_update(project, author)
        guideline.text = text
        guideline.author = author
        guideline.save(update_fields=["text", "author"])
    return guideline


def publish(project, author, text=None):
    """Publish the draft (with `text` written into it first, when given) as the new version.
    An empty guideline is refused."""
    if text is not None:
        _check_text(text)
    with transaction.atomic():
        guideline = _draft_for_update(project, author)
        if text is not None:
            guideline.text = text
        if not guideline.text.strip():
            raise DomainError("an empty guideline cannot be published", "text")
        guideline.author = author
        guideline.published_at = timezone.now()
        guideline.save(update_fields=["text", "author", "published_at"])
    return guideline


def add_note(project, author, *, text, item_id=None):
    """A note an SME writes from an item: appended to the next draft, and kept as a row."""
    if not isinstance(text, str) or not text.strip():
        raise DomainError("write the note", "text")
    if len(text) > MAX_NOTE_CHARS:
        raise DomainError(f"a note has at most {MAX_NOTE_CHARS:,} characters", "text")
    with transaction.atomic():
        item = None
        if item_id is not None:
            try:
                item = Item.objects.filter(project=project, pk=int(item_id)).first()
            except (TypeError, ValueError):
                item = None
            if item is None:
                raise DomainError(f"there is no item {item_id} in this project", "item")
        guideline = _draft_for_update(project, author)
        where = f" (item {item.external_id})" if item else ""
        line = " ".join(text.strip().split())
        guideline.text = f"{guideline.text.rstrip()}\n\n- Note{where}: {line}\n".lstrip()
        guideline.save(update_fields=["text"])
        return GuidelineNote.objects.create(project=project, item=item, author=author, text=text, draft=guideline)


def versions(project, report_data=None):
    """Published versions, newest first, each with the agreement measured on the labels made
    under it (from the quality report's `guideline_versions`)."""
    by_version = {}
    for row in (report_data or {}).get("guideline_versions") or []:
        by_version[row.get("version")] = row
    out = []
    for g in Guideline.objects.filter(project=project, published_at__isnull=False).select_related("author"):
        row = by_version.get(g.version) or {}
        out.append(
            {
                "guideline": g,
                "version": g.version,
                "published_at": g.published_at,
                "author": g.author.get_username() if g.author else None,
                "labels": row.get("labels", 0),
                "krippendorff_alpha": row.get("krippendorff_alpha"),
                "percent_agreement": row.get("percent_agreement"),
            }
        )
    return sorted(out, key=lambda r: -r["version"])
