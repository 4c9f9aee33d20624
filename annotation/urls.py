from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token

from .api import views
from .api.labeling import AnnotationList, AnnotationUndo, NextItem, SkipCreate
from .api.quality import QualityReportView

app_name = "api"

urlpatterns = [
    path("projects/<int:project_id>/next-item/", NextItem.as_view(), name="next-item"),
    path("projects/<int:project_id>/annotations/", AnnotationList.as_view(), name="annotation-list"),
    path("projects/<int:project_id>/annotations/<int:pk>/undo/", AnnotationUndo.as_view(), name="annotation-undo"),
    path("projects/<int:project_id>/skips/", SkipCreate.as_view(), name="skip-create"),
    path("auth/token/", obtain_auth_token, name="auth-token"),
    path("projects/", views.ProjectList.as_view(), name="project-list"),
    path("projects/<int:pk>/", views.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<int:project_id>/imports/", views.ImportList.as_view(), name="import-list"),
    path("projects/<int:project_id>/imports/<int:pk>/", views.ImportDetail.as_view(), name="import-detail"),
    path("projects/<int:project_id>/items/", views.ItemList.as_view(), name="item-list"),
    path("projects/<int:project_id>/members/", views.MemberList.as_view(), name="member-list"),
    path("projects/<int:project_id>/quality/", QualityReportView.as_view(), name="project-quality"),
]
