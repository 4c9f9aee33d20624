"""The labeling API: next item, labels (submit, list, undo) and skips.

Views authorize (`project_for`: 404 for non-members), validate the input's shape, make one
service call and answer. The service's DomainError becomes 400 naming the field at fault,
NotFound 404 and Conflict 409; nothing is written on any of them.
"""

from django.db.models import F, Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from ..access import STAFF_ROLES, project_for
from ..errors import DomainError
from ..models import Annotation, LabelClass
from ..services import labeling
from .errors import api_error
from .labeling_serializers import AnnotationInputSerializer, AnnotationSerializer, ServedItemSerializer, SkipSerializer


def _served(served, request, project):
    return ServedItemSerializer(served, context={"request": request, "project": project}).data


def _parse_ids(raw, name):
    """'3,7' -> [3, 7]; a 400 naming `name` for anything else."""
    if not raw:
        return []
    try:
        ids = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ValidationError({name: ["give item ids separated by commas, e.g. 3,7"]}) from None
    limit = labeling.config()["MAX_EXCLUDE"]
    if len(ids) > limit:
        raise ValidationError({name: [f"at most {limit} ids"]})
    return ids


class NextItem(APIView):
    @extend_schema(
        summary="The next item for you to label",
        description=(
            "Leases the item to you for LEASE_SECONDS (600 s by default) and returns it. A live lease you "
            "already hold comes back first, except the items in `exclude` (pass the item on screen to "
            "prefetch the one after it). 204 when nothing is left for you. Nothing here tells how many "
            "labels the item has or whether it is a gold item."
        ),
        parameters=[
            OpenApiParameter(
                "exclude", OpenApiTypes.STR, description="Comma-separated ids of items you hold (at most 3)."
            )
        ],
        responses={200: ServedItemSerializer, 204: OpenApiResponse(description="Nothing left for you to label.")},
    )
    def get(self, request, project_id):
        project = project_for(request.user, project_id)
        exclude = _parse_ids(request.query_params.get("exclude"), "exclude")
        try:
            served = labeling.next_item(project, request.user, exclude=exclude)
        except DomainError as exc:
            raise api_error(exc) from exc
        if served is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_served(served, request, project))


class AnnotationList(generics.ListAPIView):
    """Annotations in a project, newest first: labelers see their own only, SMEs and MLEs everyone's.

    Current annotations only unless `history=true`. Filters: `item`, and for SMEs and MLEs `labeler`
    (a username).
    """

    serializer_class = AnnotationSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("item", OpenApiTypes.INT),
            OpenApiParameter("labeler", OpenApiTypes.STR, description="Username (SMEs and MLEs)."),
            OpenApiParameter("history", OpenApiTypes.BOOL, description="Include edited-away versions."),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        user = self.request.user
        project = project_for(user, self.kwargs["project_id"])
        params = self.request.query_params
        annotations = Annotation.objects.filter(item__project=project)
        if project.role in STAFF_ROLES:
            if params.get("labeler"):
                annotations = annotations.filter(labeler__username=params["labeler"])
        else:
            annotations = annotations.filter(labeler=user)
        if params.get("item"):
            try:
                annotations = annotations.filter(item_id=int(params["item"]))
            except ValueError:
                raise ValidationError({"item": ["must be an item id"]}) from None
        if params.get("history", "").lower() not in ("1", "true", "yes"):
            annotations = annotations.filter(is_current=True)
        return (
            annotations.select_related("labeler")
            .annotate(guideline_version=F("guideline__version"))
            .prefetch_related(Prefetch("labels", queryset=LabelClass.objects.order_by("order", "name")))
            .order_by("-created_at", "-pk")
        )

    @extend_schema(
        summary="Label an item you were served",
        request=AnnotationInputSerializer,
        responses={
            201: AnnotationSerializer,
            200: OpenApiResponse(AnnotationSerializer, description="A retry with a known client_id: the first one."),
            400: OpenApiResponse(description="Which field is wrong, e.g. {'labels': ['…']}. Nothing was written."),
            409: OpenApiResponse(description="Your lease ran out and the item's slots went to others."),
        },
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id)
        data = AnnotationInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        try:
            annotation, created = labeling.submit(
                project,
                request.user,
                item_id=fields["item"],
                labels=fields["labels"],
                unsure=fields["unsure"],
                note=fields["note"],
                duration_ms=fields.get("duration_ms"),
                client_id=fields["client_id"],
            )
        except DomainError as exc:
            raise api_error(exc) from exc
        annotation.labeler = request.user
        return Response(
            AnnotationSerializer(annotation).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class AnnotationUndo(APIView):
    @extend_schema(
        summary="Undo your label within UNDO_SECONDS",
        description=(
            "Deletes the annotation (an earlier version of yours becomes current again) and returns the item "
            "so it can be labelled anew; it is leased to you again."
        ),
        request=None,
        responses={200: ServedItemSerializer, 400: OpenApiResponse(description="Too late, or already changed.")},
    )
    def post(self, request, project_id, pk):
        project = project_for(request.user, project_id)
        try:
            served = labeling.undo(project, request.user, annotation_id=pk)
        except DomainError as exc:
            raise api_error(exc) from exc
        return Response(_served(served, request, project))


class SkipCreate(APIView):
    @extend_schema(
        summary="Skip an item you were served",
        description="You will not be served it again; its slot goes back to the others.",
        request=SkipSerializer,
        responses={204: OpenApiResponse(description="Skipped.")},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id)
        data = SkipSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            labeling.skip(project, request.user, item_id=data.validated_data["item"])
        except DomainError as exc:
            raise api_error(exc) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)
