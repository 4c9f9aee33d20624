"""The label-quality dashboard's URL, included from config/urls.py next to frontend.urls."""

from django.urls import path

from . import quality_views

app_name = "quality"

urlpatterns = [
    path("projects/<slug:slug>/quality/", quality_views.quality_dashboard, name="dashboard"),
]
