from django.urls import path

from . import labeling_views

app_name = "labeling"

urlpatterns = [
    path("projects/<slug:slug>/label/", labeling_views.label, name="label"),
    path("projects/<slug:slug>/my-work/", labeling_views.my_work, name="my-work"),
    path("projects/<slug:slug>/my-work/<int:item_id>/", labeling_views.change_label, name="change-label"),
    path("projects/<slug:slug>/guideline/seen/", labeling_views.guideline_seen, name="guideline-seen"),
]
