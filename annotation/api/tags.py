"""The tags API (SMEs and MLEs): a project's tags, an item's tags, and tagging in bulk.

    GET, POST          projects/{id}/tags/                       list, create
    GET, PATCH, DELETE projects/{id}/tags/{tag}/                  one tag
    POST               projects/{id}/tags/bulk/                  add or remove on ids or on a filter
    GET, POST          projects/{id}/items/{item}/tags/           an item's tags; add one
    DELETE             projects/{id}/items/{item}/tags/{tag}/     remove one

Labelers and non-members get 404 on every endpoint (tags could hint at the answer; to them tags
do not exist). Bad input is a 400 naming the field; nothing is written on any refusal. Wired by
one line in annotation/urls.py (these paths hang under projects/<project_id>/).
"""

from django.urls import path
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..errors import DomainError
from ..models.tags import TAG_SLICE_PREFIX, TAG_SLICE_VALUE
from ..services import tags as service
from .adjudication import IdAsSentField, IdsAsSentField, TextAsSentField, _call, _valid, staff_project

ACTIONS = ("add", "remove")


class TagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    colour = serializers.CharField(help_text="#rrggbb")
    description = serializers.CharField()
    slice = serializers.SerializerMethodField(help_text="The tag as a slice: tag:<name>=yes.")
    items = serializers.SerializerMethodField(help_text="Items carrying the tag (list and detail only).")

    def get_slice(self, tag) -> str:
        return f"{TAG_SLICE_PREFIX}{tag.name}={TAG_SLICE_VALUE}"

    def get_items(self, tag) -> int | None:
        return getattr(tag, "n_items", None)


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class FiltersAsSentField(TextAsSentField):
    pass


class TagInputSerializer(serializers.Serializer):
    name = TextAsSentField(help_text=f"At most {service.MAX_NAME} characters; unique in the project (any case).")
    colour = TextAsSentField(help_text="#rrggbb; a colour of the palette when left out.")
    description = TextAsSentField()


class ItemTagInputSerializer(serializers.Serializer):
    tag = IdAsSentField(help_text="The tag's id; or give `name`.")
    name = TextAsSentField(help_text="The tag's name; a new name creates the tag.")


class BulkInputSerializer(ItemTagInputSerializer):
    action = TextAsSentField(help_text="add (default) or remove.")
    items = IdsAsSentField(help_text="Item ids of the project; or give `source` and `filters`.")
    source = TextAsSentField(help_text="queue (the review queue's filters) or browser (the item browser's).")
    filters = FiltersAsSentField(help_text='The page\'s filters, e.g. {"reason": "unsure", "slice": "noise=car"}.')


class BulkResultSerializer(serializers.Serializer):
    tag = TagSerializer()
    created = serializers.BooleanField(help_text="The tag was created by this request.")
    changed = serializers.IntegerField(help_text="Items that gained (or lost) the tag.")
    unchanged = serializers.IntegerField(help_text="Items that already had (or lacked) it.")
    matched = serializers.IntegerField(required=False, help_text="Items matching the filters.")


def _tag_json(tag):
    return TagSerializer(tag).data


def _present(data, *names):
    return {n: data[n] for n in names if n in data}


class TagList(APIView):
    @extend_schema(responses=TagSerializer(many=True))
    def get(self, request, project_id):
        project = staff_project(request.user, project_id)
        return Response([_tag_json(t) for t in _call(service.project_tags, project, request.user)])

    @extend_schema(request=TagInputSerializer, responses={201: TagSerializer})
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(TagInputSerializer, request)
        if "name" not in data:
            raise ValidationError({"name": ["give the tag's name"]})
        tag = _call(service.create_tag, project, request.user, data["name"], **_present(data, "colour", "description"))
        tag.n_items = 0
        return Response(_tag_json(tag), status=status.HTTP_201_CREATED)


class TagDetail(APIView):
    @extend_schema(responses=TagSerializer)
    def get(self, request, project_id, pk):
        project = staff_project(request.user, project_id)
        tags = _call(service.project_tags, project, request.user)
        tag = next((t for t in tags if t.pk == pk), None)
        if tag is None:
            raise _call_not_found(pk)
        return Response(_tag_json(tag))

    @extend_schema(request=TagInputSerializer, responses=TagSerializer)
    def patch(self, request, project_id, pk):
        project = staff_project(request.user, project_id)
        data = _valid(TagInputSerializer, request)
        fields = _present(data, "name", "colour", "description")
        if not fields:
            raise ValidationError({"non_field_errors": ["give name, colour or description"]})
        _not_found_unless_tag(project, request.user, pk)
        return Response(_tag_json(_call(service.update_tag, project, request.user, pk, **fields)))

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, project_id, pk):
        project = staff_project(request.user, project_id)
        _not_found_unless_tag(project, request.user, pk)
        _call(service.delete_tag, project, request.user, pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _call_not_found(pk):
    return NotFound(f"there is no tag {pk} in this project")


def _not_found_unless_tag(project, user, pk):
    """A tag id in the URL that is not the project's is a 404, not a 400."""
    try:
        service.get_tag(project, user, pk)
    except DomainError as exc:
        raise _call_not_found(pk) from exc


class TagBulk(APIView):
    """Add or remove one tag on many items: `items` (ids), or every item matching a page's
    filters (`source` queue or browser, and `filters`). The tag by `tag` (id) or `name` (adding
    by a new name creates it). All or nothing."""

    @extend_schema(request=BulkInputSerializer, responses=BulkResultSerializer)
    def post(self, request, project_id):
        project = staff_project(request.user, project_id)
        data = _valid(BulkInputSerializer, request)
        action = data.get("action") or "add"
        if action not in ACTIONS:
            raise ValidationError({"action": ["action must be add or remove"]})
        which = {"tag": data.get("tag"), "name": data.get("name"), "add": action == "add"}
        if "items" in data and ("source" in data or "filters" in data):
            raise ValidationError({"items": ["give either items or source and filters, not both"]})
        if "items" in data:
            result = _call(service.tag_items, project, request.user, data["items"], **which)
        elif "source" in data:
            filters = data.get("filters") or {}
            result = _call(service.tag_matching, project, request.user, data["source"], filters, **which)
        else:
            raise ValidationError({"items": ["give items (a list of ids), or source and filters"]})
        return Response(BulkResultSerializer(result).data)


class ItemTags(APIView):
    @extend_schema(responses=TagSerializer(many=True))
    def get(self, request, project_id, item_id):
        project = staff_project(request.user, project_id)
        return Response([_tag_json(t) for t in _call(service.item_tags, project, request.user, item_id)])

    @extend_schema(request=ItemTagInputSerializer, responses=BulkResultSerializer)
    def post(self, request, project_id, item_id):
        """Add a tag to the item (by id, or by name: a new name creates the tag). Adding a tag the
        item has already changes nothing (200 with changed 0)."""
        project = staff_project(request.user, project_id)
        data = _valid(ItemTagInputSerializer, request)
        result = _call(service.tag_item, project, request.user, item_id, tag=data.get("tag"), name=data.get("name"))
        status_code = status.HTTP_201_CREATED if result["changed"] else status.HTTP_200_OK
        return Response(BulkResultSerializer(result).data, status=status_code)


class ItemTagDetail(APIView):
    @extend_schema(request=None, responses=BulkResultSerializer)
    def delete(self, request, project_id, item_id, tag_id):
        project = staff_project(request.user, project_id)
        _not_found_unless_tag(project, request.user, tag_id)
        result = _call(service.tag_item, project, request.user, item_id, tag=tag_id, add=False)
        return Response(BulkResultSerializer(result).data)


# Included under projects/<int:project_id>/ by annotation/urls.py (the "api" namespace).
urlpatterns = [
    path("tags/", TagList.as_view(), name="tag-list"),
    path("tags/bulk/", TagBulk.as_view(), name="tag-bulk"),
    path("tags/<int:pk>/", TagDetail.as_view(), name="tag-detail"),
    path("items/<int:item_id>/tags/", ItemTags.as_view(), name="item-tags"),
    path("items/<int:item_id>/tags/<int:tag_id>/", ItemTagDetail.as_view(), name="item-tag-detail"),
]
