from django.urls import include, path

from config.lockout import obtain_auth_token

from .api import adjudication as adj
from .api import dataset_exports as dsx
from .api import imports_extra, views
from .api.labeling import AnnotationList, AnnotationUndo, NextItem, SkipCreate
from .api.quality import QualityReportView

app_name = "api"

urlpatterns = [
    path("projects/<int:project_id>/next-item/", NextItem.as_view(), name="next-item"),
    path("projects/<int:project_id>/annotations/", AnnotationList.as_view(), name="annotation-list"),
    path("projects/<int:project_id>/annotations/<int:pk>/undo/", AnnotationUndo.as_view(), name="annotation-undo"),
    path("projects/<int:project_id>/skips/", SkipCreate.as_view(), name="skip-create"),
    path("auth/token/", obtain_auth_token, name="auth-token"),
    path("projects/", views.ProjectList.as_view(), name="project-list"),
    path("projects/<int:pk>/", views.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<int:project_id>/imports/", views.ImportList.as_view(), name="import-list"),
    path("projects/<int:project_id>/imports/<int:pk>/", views.ImportDetail.as_view(), name="import-detail"),
    path("projects/<int:project_id>/items/", views.ItemList.as_view(), name="item-list"),
    path("projects/<int:project_id>/members/", views.MemberList.as_view(), name="member-list"),
    path("projects/<int:project_id>/quality/", QualityReportView.as_view(), name="project-quality"),
    # SME adjudication (annotation/api/adjudication.py)
    path("projects/<int:project_id>/disagreements/", adj.DisagreementList.as_view(), name="disagreement-list"),
    path("projects/<int:project_id>/resolutions/", adj.ResolutionCreate.as_view(), name="resolution-create"),
    path("projects/<int:project_id>/send-back/", adj.SendBack.as_view(), name="send-back"),
    path("projects/<int:project_id>/decisions/<int:pk>/undo/", adj.DecisionUndo.as_view(), name="decision-undo"),
    path("projects/<int:project_id>/guideline-notes/", adj.GuidelineNoteCreate.as_view(), name="guideline-note"),
    path("projects/<int:project_id>/classes/", adj.ClassList.as_view(), name="class-list"),
    path("projects/<int:project_id>/classes/merge/", adj.ClassMerge.as_view(), name="class-merge"),
    path(
        "projects/<int:project_id>/classes/merge/preview/", adj.ClassMergePreview.as_view(), name="class-merge-preview"
    ),
    path("projects/<int:project_id>/classes/<int:class_id>/rename/", adj.ClassRename.as_view(), name="class-rename"),
    path(
        "projects/<int:project_id>/classes/<int:class_id>/deactivate/",
        adj.ClassDeactivate.as_view(),
        name="class-deactivate",
    ),
    path("projects/<int:project_id>/guidelines/", adj.GuidelineList.as_view(), name="guideline-list"),
    path("projects/<int:project_id>/guidelines/publish/", adj.GuidelinePublish.as_view(), name="guideline-publish"),
    # Labelled-data imports and imported predictions (annotation/api/imports_extra.py)
    path(
        "projects/<int:project_id>/imports/labelstudio/",
        imports_extra.LabelStudioImport.as_view(),
        name="import-labelstudio",
    ),
    path(
        "projects/<int:project_id>/imports/annotations/",
        imports_extra.AnnotationImport.as_view(),
        name="import-annotations",
    ),
    path("projects/<int:project_id>/predictions/", imports_extra.PredictionList.as_view(), name="prediction-list"),
    # Dataset exports (annotation/api/dataset_exports.py)
    path("projects/<int:project_id>/dataset-exports/", dsx.DatasetExportList.as_view(), name="dataset-export-list"),
    path(
        "projects/<int:project_id>/dataset-exports/<int:pk>/",
        dsx.DatasetExportDetail.as_view(),
        name="dataset-export-detail",
    ),
    path(
        "projects/<int:project_id>/dataset-exports/<int:pk>/download/",
        dsx.DatasetExportDownload.as_view(),
        name="dataset-export-download",
    ),
    # Tags (annotation/api/tags.py)
    path("projects/<int:project_id>/", include("annotation.api.tags")),
]
