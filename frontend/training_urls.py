"""The model pages' URLs, included from config/urls.py before frontend.urls."""

from django.urls import path

from . import compare_views, leakage_views, training_views, work_next_views

app_name = "training"

urlpatterns = [
    path("projects/<slug:slug>/models/", training_views.model_list, name="model-list"),
    path("projects/<slug:slug>/models/status/", training_views.model_status, name="model-status"),
    # Before model-detail: "compare" would otherwise read as a model id.
    path("projects/<slug:slug>/models/compare/", compare_views.model_compare, name="model-compare"),
    path("projects/<slug:slug>/models/<slug:model_id>/", training_views.model_detail, name="model-detail"),
    path("projects/<slug:slug>/models/<slug:model_id>/promote/", training_views.model_promote, name="model-promote"),
    path("projects/<slug:slug>/models/<slug:model_id>/rollback/", training_views.model_rollback, name="model-rollback"),
    path("projects/<slug:slug>/models/<slug:model_id>/review/", training_views.model_review, name="model-review"),
    path("projects/<slug:slug>/models/<slug:model_id>/export/", training_views.model_export, name="model-export"),
    path(
        "projects/<slug:slug>/models/<slug:model_id>/work-next/",
        work_next_views.work_next_launch,
        name="model-work-next-launch",
    ),
    path(
        "projects/<slug:slug>/models/<slug:model_id>/exports/<int:export_id>/override/",
        training_views.export_override,
        name="export-override",
    ),
    path(
        "projects/<slug:slug>/models/<slug:model_id>/exports/<int:export_id>/download/",
        training_views.export_download,
        name="export-download",
    ),
    path(
        "projects/<slug:slug>/models/<slug:model_id>/leakage/<int:n>/move/",
        leakage_views.leakage_move,
        name="leakage-move",
    ),
]
