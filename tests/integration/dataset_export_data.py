"""A hand-built text project for the dataset-export tests: one item per way a final label can come
about, with known labelers, guideline versions, slices and an edit (history)."""

from django.utils import timezone

from annotation.models import (
    Annotation,
    AnnotationLabel,
    GoldLabel,
    GoldLabelClass,
    Guideline,
    Item,
    LabelClass,
    Membership,
    Resolution,
    ResolutionLabel,
)
from annotation.services.projects import create_project
from tests.conftest import make_user

# external id -> (split, metadata, gold, resolution ("?" = ambiguous), [(labeler, class, version, unsure)])
ITEMS = {
    "g1": ("train", {"noise": "car"}, "pos", None, [("ann", "neg", 1, False), ("bob", "neg", 1, False)]),
    "r1": ("train", {"noise": "car"}, None, "neg", [("ann", "pos", 1, False), ("bob", "neg", 2, True)]),
    "c1": ("dev", {"noise": "none"}, None, None,
           [("ann", "pos", 2, False), ("bob", "pos", 2, False), ("cid", "neg", 2, False)]),
    "n1": ("test", {}, None, None, []),
    "a1": ("train", {}, None, "?", [("ann", "pos", 1, False), ("bob", "neg", 1, False)]),
    "u1": ("dev", {"noise": "car"}, None, None, [("ann", "unclear", 2, True), ("bob", "unclear", 2, False)]),
    "h1": ("train", {}, None, None, [("ann", "neg", 2, False)]),  # ann first said pos (history)
    "low": ("train", {}, None, None, [("ann", "pos", 2, False), ("bob", "neg", 2, False)]),
}  # fmt: skip


def build_project(slug="films"):
    project = create_project(
        slug=slug, name=slug.title(), data_kind="text", classes=["pos", "neg"], ambiguity_classes=["unclear"]
    )
    users = {}
    for name in ("ann", "bob", "cid"):
        users[name] = make_user(f"{slug}-{name}")
        Membership.objects.create(user=users[name], project=project, role="labeler")
    classes = {c.name: c for c in LabelClass.objects.filter(project=project)}
    versions = {
        v: Guideline.objects.create(project=project, version=v, text=f"v{v}", published_at=timezone.now())
        for v in (1, 2)
    }
    for external_id, (split, metadata, gold, resolution, labels) in ITEMS.items():
        item = Item.objects.create(
            project=project, external_id=external_id, split=split, metadata=metadata, text=f"text of {external_id}"
        )
        if gold:
            g = GoldLabel.objects.create(item=item)
            GoldLabelClass.objects.create(gold=g, label_class=classes[gold])
        if resolution:
            r = Resolution.objects.create(item=item, is_ambiguous=resolution == "?", note="")
            if resolution != "?":
                ResolutionLabel.objects.create(resolution=r, label_class=classes[resolution])
        if external_id == "h1":
            old = Annotation.objects.create(item=item, labeler=users["ann"], guideline=versions[1], is_current=False)
            AnnotationLabel.objects.create(annotation=old, label_class=classes["pos"])
        for labeler, name, version, unsure in labels:
            a = Annotation.objects.create(
                item=item,
                labeler=users[labeler],
                guideline=versions[version],
                unsure=unsure,
                note="not sure" if unsure else "",
            )
            AnnotationLabel.objects.create(annotation=a, label_class=classes[name])
    return project
