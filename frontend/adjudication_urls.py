from django.urls import path

from . import adjudication_views as views
from . import tag_views

app_name = "adjudication"

urlpatterns = [
    path("projects/<slug:slug>/review/", views.queue, name="queue"),
    path("projects/<slug:slug>/review/items/<int:item_id>/", views.item_page, name="item"),
    path("projects/<slug:slug>/review/items/<int:item_id>/panel/", views.item_panel, name="item-panel"),
    path("projects/<slug:slug>/review/undo/<int:event_id>/", views.undo_page, name="undo"),
    path("projects/<slug:slug>/guidelines/", views.guideline_page, name="guidelines"),
    path("projects/<slug:slug>/guidelines/preview/", views.guideline_preview, name="guideline-preview"),
    path("projects/<slug:slug>/classes/", views.classes_page, name="classes"),
    path("projects/<slug:slug>/classes/action/", views.class_action, name="class-action"),
    path("projects/<slug:slug>/tags/tag-matching/", tag_views.tag_matching, name="tag-matching"),
]
