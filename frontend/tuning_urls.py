"""The tuning pages' URLs, included from frontend/urls.py."""

from django.urls import path

from . import tuning_views

app_name = "tuning"

urlpatterns = [
    path("projects/<slug:slug>/tuning/", tuning_views.tuning_list, name="tuning-list"),
    path("projects/<slug:slug>/tuning/<int:run_id>/", tuning_views.tuning_detail, name="tuning-detail"),
    path("projects/<slug:slug>/tuning/<int:run_id>/status/", tuning_views.tuning_status, name="tuning-status"),
    path("projects/<slug:slug>/tuning/<int:run_id>/cancel/", tuning_views.tuning_cancel, name="tuning-cancel"),
]
