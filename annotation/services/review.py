from django.db import transaction

from ..errors import DomainError
from ..models import Item, ReviewRequest

MAX_REASON_CHARS = 300


@transaction.atomic
def request_review(project, item_ids, *, requested_by, reason):
    """Send items to the SME queue. An item already waiting there keeps its first request.

    Returns how many items were newly queued. Raises DomainError, writing nothing, when an id
    is not an item of this project.
    """
    wanted = set(item_ids)
    found = set(Item.objects.filter(project=project, pk__in=wanted).values_list("pk", flat=True))
    missing = sorted(wanted - found)
    if missing:
        raise DomainError(f"not items of this project: {', '.join(map(str, missing[:10]))}", "items")
    waiting = set(
        ReviewRequest.objects.filter(item_id__in=found, resolved_at__isnull=True).values_list("item_id", flat=True)
    )
    created = ReviewRequest.objects.bulk_create(
        ReviewRequest(item_id=pk, requested_by=requested_by, reason=reason[:MAX_REASON_CHARS])
        for pk in sorted(found - waiting)
    )
    return len(created)
