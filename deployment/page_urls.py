"""The devices page's URL, included from config/urls.py."""

from django.urls import path

from . import pages

app_name = "deployment"

urlpatterns = [
    path("projects/<slug:slug>/devices/", pages.devices_page, name="devices"),
]
