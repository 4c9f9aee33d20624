from django.db.models import Count, OuterRef, Prefetch, Subquery
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from ..access import STAFF_ROLES, can_create_projects, project_for
from ..errors import DomainError
from ..models import DataKind, ImportBatch, Item, LabelClass, Membership, Project, Role, Split
from ..services.projects import add_member, create_project
from . import serializers
from .imports_extra import run_upload


def _projects_with_role(user):
    return (
        Project.objects.visible_to(user)
        .annotate(
            item_count=Count("items", distinct=True),
            role=Subquery(Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]),
        )
        .prefetch_related(Prefetch("label_classes", queryset=LabelClass.objects.order_by("order")))
        .order_by("name")
    )


def _invalid(exc: DomainError):
    return ValidationError({exc.field or "non_field_errors": [exc.message]})


class ProjectList(generics.ListCreateAPIView):
    """Projects you are a member of. MLEs and admins create projects; the creator becomes its MLE."""

    serializer_class = serializers.ProjectSerializer

    def get_queryset(self):
        return _projects_with_role(self.request.user)

    @extend_schema(request=serializers.ProjectCreateSerializer, responses={201: serializers.ProjectSerializer})
    def post(self, request):
        if not can_create_projects(request.user):
            raise PermissionDenied("Only MLEs and admins create projects.")
        data = serializers.ProjectCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        description = fields.pop("description")
        split_fractions = tuple(fields.pop(f"{s}_fraction") for s in Split.values)
        try:
            project = create_project(**fields, split_fractions=split_fractions, created_by=request.user)
        except DomainError as exc:
            raise _invalid(exc) from exc
        if description:
            project.description = description
            project.save(update_fields=["description"])
        project = _projects_with_role(request.user).get(pk=project.pk)
        return Response(self.get_serializer(project).data, status=status.HTTP_201_CREATED)


class ProjectDetail(generics.RetrieveAPIView):
    serializer_class = serializers.ProjectSerializer

    def get_queryset(self):
        return _projects_with_role(self.request.user)


class ProjectImports:
    serializer_class = serializers.ImportBatchSerializer

    def get_queryset(self):
        project = project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES)
        return ImportBatch.objects.filter(project=project).select_related("created_by")


class ImportList(ProjectImports, generics.ListCreateAPIView):
    """Import batches of a project (SMEs and MLEs); an MLE uploads a new one."""

    parser_classes = [MultiPartParser, FormParser]

    @extend_schema(
        request=serializers.ImportUploadSerializer,
        responses={201: serializers.ImportBatchSerializer, 202: serializers.ImportBatchSerializer},
    )
    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        upload_data = serializers.ImportUploadSerializer(data=request.data)
        upload_data.is_valid(raise_exception=True)
        upload = upload_data.validated_data["file"]
        # A large upload is imported by a worker (202, batch queued); a small one now (201).
        kind = ImportBatch.Kind.IMAGES if project.data_kind == DataKind.IMAGE else ImportBatch.Kind.TEXTS
        return run_upload(request, project, job="items", kind=kind, uploads={"file": upload}, options={})


class ImportDetail(ProjectImports, generics.RetrieveAPIView):
    pass


class ItemList(generics.ListAPIView):
    """Items of a project with their gold labels (SMEs and MLEs). Filter with ?split=train|dev|test."""

    serializer_class = serializers.ItemSerializer

    def get_queryset(self):
        project = project_for(self.request.user, self.kwargs["project_id"], roles=STAFF_ROLES)
        items = Item.objects.filter(project=project).prefetch_related("gold__labels").order_by("pk")
        split = self.request.query_params.get("split")
        if split:
            if split not in Split.values:
                raise ValidationError({"split": [f"must be one of {', '.join(Split.values)}"]})
            items = items.filter(split=split)
        return items


class MemberList(generics.GenericAPIView):
    """The project's members (SMEs and MLEs see them). An MLE adds a member, creating the
    account when a password is given; a second add with another role changes the role."""

    serializer_class = serializers.MemberSerializer
    pagination_class = None

    def get(self, request, project_id):
        project = project_for(request.user, project_id, roles=STAFF_ROLES)
        members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
        return Response([{"username": m.user.username, "role": m.role} for m in members])

    def post(self, request, project_id):
        project = project_for(request.user, project_id, roles=(Role.MLE,))
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            membership, created = add_member(project, **data.validated_data, by=request.user)
        except DomainError as exc:
            raise _invalid(exc) from exc
        body = {"username": membership.user.username, "role": membership.role, "account_created": created}
        return Response(body, status=status.HTTP_201_CREATED)
