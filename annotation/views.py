from django.contrib.auth.decorators import login_required
from django.db.models import Exists, OuterRef
from django.http import FileResponse, Http404

from .access import STAFF_ROLES
from .models import Annotation, Assignment, Item, Membership

FILE_FIELDS = ("image", "thumbnail")


def items_whose_files(user):
    """Items whose image and thumbnail `user` may fetch, in one query whatever the project:
    SMEs and MLEs of the item's project (superusers: any item), and a labeler the item was
    served to (an assignment, leased, done or skipped) or who labelled it (an imported label).
    A labeler never fetches anything else by id, gold items included: what they were not
    served tells them nothing and stays unseen."""
    if user.is_superuser:
        return Item.objects.all()
    staff = Membership.objects.filter(project=OuterRef("project"), user=user, role__in=STAFF_ROLES)
    member = Membership.objects.filter(project=OuterRef("project"), user=user)
    served = Assignment.objects.filter(item=OuterRef("pk"), labeler=user)
    labelled = Annotation.objects.filter(item=OuterRef("pk"), labeler=user)
    return Item.objects.filter(Exists(staff) | (Exists(member) & (Exists(served) | Exists(labelled))))


@login_required
def item_file(request, pk, kind):
    """An item's image or thumbnail for those who may see it (items_whose_files); 404 for
    everyone else, as for an item that does not exist (media is never public)."""
    if kind not in FILE_FIELDS:
        raise Http404("No such item file.")
    item = items_whose_files(request.user).filter(pk=pk).only(*FILE_FIELDS).first()
    file = getattr(item, kind, None)
    if not file:
        raise Http404("No such item file.")
    try:
        handle = file.open("rb")
    except FileNotFoundError:
        raise Http404("The item's file is missing from storage.") from None
    response = FileResponse(handle)
    # Content-addressed files never change: let the browser keep them.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
