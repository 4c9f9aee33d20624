from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.utils.csp import CSP
from django.views.decorators.csp import csp_override
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from annotation.views import item_file

# Swagger UI (from drf-spectacular-sidecar, our own static files) with its start-up script as a file
# of its own; its page still carries a <style> block and its CSS draws icons from data: URLs.
api_docs = csp_override(
    {
        **settings.SECURE_CSP,
        "style-src": [CSP.SELF, CSP.UNSAFE_INLINE],
        "img-src": [CSP.SELF, "data:"],
    }
)(SpectacularSwaggerSplitView.as_view(url_name="schema"))

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("annotation.urls")),
    path("api/v1/", include("training.urls")),
    path("api/v1/", include("active_learning.urls")),
    path("api/v1/", include("deployment.urls")),
    path("items/<int:pk>/<str:kind>/", item_file, name="item-file"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("", include("frontend.quality_urls")),
    path("", include("frontend.labeling_urls")),
    path("", include("frontend.training_urls")),
    path("", include("frontend.adjudication_urls")),
    path("", include("frontend.cycle_urls")),
    path("", include("deployment.monitoring_urls")),
    path("", include("deployment.page_urls")),
    path("", include("frontend.tuning_urls")),
    path("", include("frontend.urls")),
]
