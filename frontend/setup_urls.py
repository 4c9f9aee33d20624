"""Setting up a project in the browser; included by frontend/urls.py, so the names are
`frontend:project-create` and so on."""

from django.urls import path

from . import item_browser_views, setup_views

urlpatterns = [
    path("new-project/", setup_views.project_create, name="project-create"),
    path("projects/<slug:slug>/upload/", setup_views.upload, name="project-upload"),
    path("projects/<slug:slug>/members/", setup_views.members, name="project-members"),
    path("projects/<slug:slug>/items/", item_browser_views.item_browser, name="project-items"),
]
