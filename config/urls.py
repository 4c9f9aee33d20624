from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotation.views import item_file

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("annotation.urls")),
    path("api/v1/", include("training.urls")),
    path("api/v1/", include("active_learning.urls")),
    path("items/<int:pk>/<str:kind>/", item_file, name="item-file"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("frontend.quality_urls")),
    path("", include("frontend.labeling_urls")),
    path("", include("frontend.training_urls")),
    path("", include("frontend.adjudication_urls")),
    path("", include("frontend.cycle_urls")),
    path("", include("frontend.urls")),
]
