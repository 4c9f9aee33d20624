"""The training API, included under /api/v1/ from config/urls.py."""

from django.urls import path, re_path

from . import api, leakage_api

app_name = "training_api"

urlpatterns = [
    path("projects/<int:project_id>/models/", api.ProjectModels.as_view(), name="project-models"),
    path("projects/<int:project_id>/models/compare/", api.ProjectModelCompare.as_view(), name="project-models-compare"),
    path("projects/<int:project_id>/promotions/", api.ProjectPromotions.as_view(), name="project-promotions"),
    path("models/<slug:model_id>/", api.ModelDetail.as_view(), name="model-detail"),
    path("models/<slug:model_id>/promote/", api.ModelPromote.as_view(), name="model-promote"),
    path("models/<slug:model_id>/rollback/", api.ModelRollback.as_view(), name="model-rollback"),
    path("models/<slug:model_id>/exports/", api.ModelExports.as_view(), name="model-exports"),
    path("models/<slug:model_id>/work-next/", api.ModelWorkNext.as_view(), name="model-work-next"),
    path("exports/<int:export_id>/", api.ExportDetail.as_view(), name="export-detail"),
    path("exports/<int:export_id>/override/", api.ExportOverride.as_view(), name="export-override"),
    path("exports/<int:export_id>/download/", api.ExportDownload.as_view(), name="export-download"),
    path("projects/<int:project_id>/leakage/", leakage_api.ProjectLeakage.as_view(), name="project-leakage"),
    re_path(
        r"^projects/(?P<project_id>[0-9]+)/leakage/groups/(?P<n>[0-9]+)/move/?$",
        leakage_api.LeakageGroupMove.as_view(),
        name="leakage-move",
    ),
]
urlpatterns += [
    path("projects/<int:project_id>/tuning-runs/", api.ProjectTuningRuns.as_view(), name="project-tuning-runs"),
    path(
        "projects/<int:project_id>/tuning-runs/<int:run_id>/", api.TuningRunDetail.as_view(), name="tuning-run-detail"
    ),
    path(
        "projects/<int:project_id>/tuning-runs/<int:run_id>/cancel/",
        api.TuningRunCancel.as_view(),
        name="tuning-run-cancel",
    ),
]
