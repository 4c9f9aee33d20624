"""The rules that must always hold are enforced by the database itself."""

import pytest
from django.db import IntegrityError, transaction

from annotation.models import (
    Annotation,
    Guideline,
    Item,
    LabelClass,
    Membership,
    Project,
    Resolution,
)

from ..conftest import make_user

pytestmark = pytest.mark.django_db


def violates(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def base_project(**fields):
    defaults = {"name": "P", "slug": "p", "data_kind": "text"}
    return Project.objects.create(**(defaults | fields))


@pytest.mark.parametrize(
    "fields",
    [
        {"overlap": 0},
        {"consistency_fraction": 1.5},
        {"consistency_fraction": -0.1},
        {"train_fraction": 0.5, "dev_fraction": 0.1, "test_fraction": 0.1},
        {"train_fraction": 1.2, "dev_fraction": -0.1, "test_fraction": -0.1},
        {"task_type": "ranking"},
        {"data_kind": "video"},
    ],
)
def test_project_constraints(fields):
    violates(lambda: base_project(**fields))


def test_valid_project_with_exact_fractions_is_accepted():
    project = base_project(train_fraction=0.7, dev_fraction=0.2, test_fraction=0.1)
    assert project.pk


def test_class_names_and_shortcuts_unique_per_project(project, other_project):
    violates(lambda: LabelClass.objects.create(project=project, name="crow"))
    violates(lambda: LabelClass.objects.create(project=project, name="raven", shortcut="1"))
    LabelClass.objects.create(project=other_project, name="crow", shortcut="9")  # other project: fine
    LabelClass.objects.create(project=project, name="raven")  # no shortcut: many may have none
    LabelClass.objects.create(project=project, name="jay")


def test_merged_class_must_be_inactive_and_not_itself(project):
    crow = project.label_classes.get(name="crow")
    dove = project.label_classes.get(name="dove")
    crow.merged_into = dove
    violates(crow.save)
    crow.is_active = False
    crow.save()
    dove.merged_into, dove.is_active = dove, False
    violates(dove.save)


def test_item_external_id_and_content_unique_per_project(project, other_project):
    Item.objects.create(project=project, external_id="a", split="train", sha256="f" * 64)
    violates(lambda: Item.objects.create(project=project, external_id="a", split="dev"))
    violates(lambda: Item.objects.create(project=project, external_id="b", split="dev", sha256="f" * 64))
    violates(lambda: Item.objects.create(project=project, external_id="c", split="hold"))
    violates(lambda: Item.objects.create(project=project, external_id="", split="train"))
    Item.objects.create(project=project, external_id="d", split="train")  # no content: no hash
    Item.objects.create(project=project, external_id="e", split="train")
    Item.objects.create(project=other_project, external_id="a", split="train", sha256="f" * 64)


def test_one_role_per_user_and_project(project, labeler):
    violates(lambda: Membership.objects.create(user=labeler, project=project, role="sme"))
    violates(lambda: Membership.objects.create(user=make_user("x"), project=project, role="boss"))


def test_guideline_versions_unique_and_positive(project):
    Guideline.objects.create(project=project, version=1)
    violates(lambda: Guideline.objects.create(project=project, version=1))
    violates(lambda: Guideline.objects.create(project=project, version=0))


def test_one_current_annotation_per_item_and_labeler_with_history(project, labeler):
    item = Item.objects.create(project=project, external_id="a", split="train")
    first = Annotation.objects.create(item=item, labeler=labeler)
    violates(lambda: Annotation.objects.create(item=item, labeler=labeler))
    first.is_current = False
    first.save()
    Annotation.objects.create(item=item, labeler=labeler)
    assert Annotation.objects.filter(item=item, labeler=labeler).count() == 2
    assert Annotation.objects.current().filter(item=item).count() == 1
    violates(lambda: Annotation.objects.create(item=item, labeler=labeler, is_current=False, source="guess"))


def test_client_id_unique_per_labeler(project, labeler, labeler2):
    import uuid

    a = Item.objects.create(project=project, external_id="a", split="train")
    b = Item.objects.create(project=project, external_id="b", split="train")
    client_id = uuid.uuid4()
    Annotation.objects.create(item=a, labeler=labeler, client_id=client_id)
    violates(lambda: Annotation.objects.create(item=b, labeler=labeler, client_id=client_id))
    Annotation.objects.create(item=b, labeler=labeler2, client_id=client_id)


def test_one_current_resolution_per_item(project, sme):
    item = Item.objects.create(project=project, external_id="a", split="train")
    Resolution.objects.create(item=item, decided_by=sme, is_ambiguous=True)
    violates(lambda: Resolution.objects.create(item=item, decided_by=sme))
    Resolution.objects.create(item=item, decided_by=sme, is_current=False)


def test_deleting_a_project_deletes_everything_in_it(project, labeler):
    from annotation.models import AnnotationLabel

    crow, dove = project.label_classes.get(name="crow"), project.label_classes.get(name="dove")
    dove.merged_into, dove.is_active = crow, False
    dove.save()
    item = Item.objects.create(project=project, external_id="a", split="train")
    annotation = Annotation.objects.create(
        item=item, labeler=labeler, guideline=Guideline.objects.create(project=project, version=1)
    )
    AnnotationLabel.objects.create(annotation=annotation, label_class=crow)
    with pytest.raises(Exception, match="restricted"), transaction.atomic():
        crow.delete()  # a class still in use cannot be deleted on its own
    project.delete()
    assert not LabelClass.objects.exists() and not Annotation.objects.exists()
