"""The cycles API, included under /api/v1/ from config/urls.py."""

from django.urls import path

from . import api

app_name = "cycles_api"

urlpatterns = [
    path("projects/<int:project_id>/cycles/", api.ProjectCycles.as_view(), name="project-cycles"),
    path("cycles/<int:cycle_id>/", api.CycleDetail.as_view(), name="cycle-detail"),
    path("cycles/<int:cycle_id>/cancel/", api.CycleCancel.as_view(), name="cycle-cancel"),
]
