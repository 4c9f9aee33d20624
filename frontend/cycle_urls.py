"""The cycle pages' URLs, included from config/urls.py before frontend.urls."""

from django.urls import path

from . import cycle_views

app_name = "cycles"

urlpatterns = [
    path("projects/<slug:slug>/cycles/", cycle_views.cycle_list, name="cycle-list"),
    path("projects/<slug:slug>/cycles/status/", cycle_views.cycle_status, name="cycle-status"),
    path("projects/<slug:slug>/cycles/<int:number>/", cycle_views.cycle_detail, name="cycle-detail"),
    path("projects/<slug:slug>/cycles/<int:number>/cancel/", cycle_views.cycle_cancel, name="cycle-cancel"),
]
