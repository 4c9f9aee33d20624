from django.urls import include, path

from . import views

app_name = "frontend"

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("", include("frontend.export_urls")),  # the dataset-export page (namespace "exports")
]

# Setting up a project in the browser: create, upload, members, item browser (frontend/setup_urls.py).
from .setup_urls import urlpatterns as setup_urlpatterns  # noqa: E402

urlpatterns += setup_urlpatterns
