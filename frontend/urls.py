from django.urls import include, path

from . import views

app_name = "frontend"

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("", include("frontend.export_urls")),  # the dataset-export page (namespace "exports")
]
