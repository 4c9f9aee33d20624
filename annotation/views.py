from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404

from .models import Item, Project


@login_required
def item_file(request, pk, kind):
    """An item's image or thumbnail, for members of its project only (media is never public)."""
    item = Item.objects.filter(pk=pk, project__in=Project.objects.visible_to(request.user)).first()
    field = {"image": "image", "thumbnail": "thumbnail"}.get(kind)
    if item is None or field is None or not getattr(item, field):
        raise Http404("No such item file.")
    response = FileResponse(getattr(item, field).open("rb"))
    # Content-addressed files never change: let the browser keep them.
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
