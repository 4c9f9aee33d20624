"""The dataset-export page's URL, included from frontend/urls.py."""

from django.urls import path

from . import export_views

app_name = "exports"

urlpatterns = [
    path("projects/<slug:slug>/exports/", export_views.export_page, name="page"),
]
