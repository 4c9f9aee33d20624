"""The export's NumPy loader of the consensus input (dataset_export.current_label_arrays) against
training.datasets._consensus, which reads the same labels into Python lists: same labels, same
numbering, hence the same consensus, on a project with every case the selection skips."""

import numpy as np
import pytest

from annotation.models import Annotation, AnnotationLabel, Item, LabelClass
from annotation.services import dataset_export as service
from annotation.services.projects import create_project
from tests.conftest import make_user
from training.datasets import _consensus, class_index

pytestmark = pytest.mark.django_db


@pytest.fixture
def project(db):
    """30 texts, five labelers in scrambled creation order, seeded labels; plus a merged class (its
    labels count as the target), a retired class (skipped), an annotation with two classes (the
    lower class id counts), superseded annotations (skipped) and an unlabelled item."""
    project = create_project(slug="arrays", name="arrays", data_kind="text", classes=["a", "b", "c"], overlap=3)
    live = {c.name: c for c in LabelClass.objects.filter(project=project)}
    merged = LabelClass.objects.create(project=project, name="a2", order=9, merged_into=live["a"], is_active=False)
    retired = LabelClass.objects.create(project=project, name="old", order=10, is_active=False)
    users = [make_user(name) for name in ("eve", "ann", "dan", "bob", "cy")]
    rng = np.random.default_rng(3)
    choices = [live["a"], live["b"], live["c"], merged, retired]
    for i in range(30):
        item = Item.objects.create(
            project=project, external_id=f"x{i}", text=f"t{i}", sha256=f"{i:064x}", split="train"
        )
        if i == 29:
            continue  # nobody labelled it
        # Labelers in a different order per item, so first appearance is not user id order.
        for u in rng.permutation(len(users)).tolist()[: int(rng.integers(1, 6))]:
            if rng.random() < 0.2:  # a superseded label first
                old = Annotation.objects.create(item=item, labeler=users[u], is_current=False)
                AnnotationLabel.objects.create(annotation=old, label_class=live["c"])
            annotation = Annotation.objects.create(item=item, labeler=users[u])
            for cls in rng.choice(len(choices), size=int(rng.integers(1, 3)), replace=False).tolist():
                AnnotationLabel.objects.create(annotation=annotation, label_class=choices[cls])
    return project


@pytest.mark.parametrize("method", ["dawid_skene", "majority_vote"])
def test_numpy_loader_gives_training_s_consensus(project, method):
    classes = class_index(project)
    item_ids = np.array(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    positions = {pk: i for i, pk in enumerate(item_ids.tolist())}
    expected = _consensus(project, positions, classes, item_ids.size, method, 0)
    got = service._consensus(project, item_ids, classes, method, 0)
    assert np.isnan(expected[0]).sum() >= 1  # the unlabelled item
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=0, atol=0)


def test_current_label_arrays_selects_and_numbers_as_training_does(project):
    classes = class_index(project)
    item_ids = np.array(Item.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    items, labelers, labels, n_labelers = service.current_label_arrays(project, item_ids, classes)
    # The same selection, spelled out in Python.
    rows = (
        AnnotationLabel.objects.filter(annotation__item__project=project, annotation__is_current=True)
        .order_by("annotation__item_id", "annotation__labeler_id", "label_class_id")
        .values_list("annotation__item_id", "annotation__labeler_id", "label_class_id")
    )
    want, seen, numbers = [], set(), {}
    for item_id, labeler_id, class_id in rows:
        idx = classes.index_of.get(class_id)
        if idx is None or (item_id, labeler_id) in seen:
            continue
        seen.add((item_id, labeler_id))
        want.append((int(np.searchsorted(item_ids, item_id)), numbers.setdefault(labeler_id, len(numbers)), idx))
    assert len(want) > 40 and n_labelers == 5 == len(numbers)
    assert list(zip(items.tolist(), labelers.tolist(), labels.tolist(), strict=True)) == want
    assert {classes.names[i] for i in labels.tolist()} == {"a", "b", "c"}  # merged counted as a, retired skipped
    assert items.dtype == labelers.dtype == labels.dtype == np.int64


def test_a_project_without_labels_gives_empty_arrays(db):
    project = create_project(slug="none", name="none", data_kind="text", classes=["a", "b"])
    Item.objects.create(project=project, external_id="x", text="t", sha256="0" * 64, split="train")
    item_ids = np.array(Item.objects.filter(project=project).values_list("pk", flat=True))
    items, labelers, labels, n = service.current_label_arrays(project, item_ids, class_index(project))
    assert (items.size, labelers.size, labels.size, n) == (0, 0, 0, 0)
    consensus, confidence = service._consensus(project, item_ids, class_index(project), "dawid_skene", 0)
    assert np.isnan(consensus).all() and np.isnan(confidence).all() and consensus.shape == (1,)
