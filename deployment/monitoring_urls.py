"""The monitoring page and API, included once from config/urls.py (before frontend.urls)."""

from django.urls import path

from . import monitoring_views as views

app_name = "monitoring"

urlpatterns = [
    path("api/v1/projects/<int:project_id>/monitoring/", views.ProjectMonitoring.as_view(), name="api"),
    path(
        "api/v1/projects/<int:project_id>/monitoring/refresh/",
        views.ProjectMonitoringRefresh.as_view(),
        name="api-refresh",
    ),
    path("projects/<slug:slug>/monitoring/", views.monitoring_page, name="page"),
    path("projects/<slug:slug>/monitoring/refresh/", views.monitoring_refresh, name="refresh"),
    path(
        "projects/<slug:slug>/monitoring/alerts/<int:alert_id>/acknowledge/",
        views.alert_acknowledge,
        name="acknowledge",
    ),
    path("projects/<slug:slug>/monitoring/<slug:channel>/", views.monitoring_page, name="channel"),
]
