"""Small digit projects for the training tests: real PNGs of scikit-learn's digits 0-2, gold labels."""

import io

import numpy as np
from PIL import Image

SPLIT_CYCLE = ["train", "train", "train", "dev", "test"]  # item i's split: 60 / 20 / 20


def digit_png(pixels, size=32):
    from annotation.services.demo import render_digit

    buffer = io.BytesIO()
    render_digit(pixels).resize((size, size), Image.Resampling.BILINEAR).save(buffer, "PNG")
    return buffer.getvalue()


def add_digit_items(project, n, *, gold=True, start=0, classes=None):
    """n items showing digits 0, 1, 2 in turn (class i % 3 of the project's first three classes),
    split 60/20/20 by position, sliced by ink ('light' / 'heavy'), with gold labels when `gold`.
    Returns the items in order."""
    from django.core.files.base import ContentFile
    from sklearn.datasets import load_digits

    from annotation.models import GoldLabel, GoldLabelClass, Item

    digits = load_digits()
    classes = classes or list(project.label_classes.filter(is_ambiguity=False).order_by("order")[:3])
    by_digit = {d: np.flatnonzero(digits.target == d) for d in range(3)}
    items = []
    for i in range(start, start + n):
        d = i % 3
        pixels = digits.images[by_digit[d][i // 3]]
        item = Item(
            project=project,
            external_id=f"digit-{i:04d}",
            split=SPLIT_CYCLE[i % 5],
            width=32,
            height=32,
            metadata={"ink": "heavy" if pixels.sum() > 300 else "light"},
        )
        data = digit_png(pixels)
        item.image.save(f"digit-{i:04d}.png", ContentFile(data), save=False)
        item.thumbnail.save(f"digit-{i:04d}.png", ContentFile(data), save=False)
        item.save()
        items.append(item)
    if gold:
        golds = GoldLabel.objects.bulk_create(GoldLabel(item=item) for item in items)
        GoldLabelClass.objects.bulk_create(
            GoldLabelClass(gold=g, label_class=classes[(start + j) % 3]) for j, g in enumerate(golds)
        )
    return items


def label(item, user, label_class):
    from annotation.models import Annotation, AnnotationLabel

    annotation = Annotation.objects.create(item=item, labeler=user)
    AnnotationLabel.objects.create(annotation=annotation, label_class=label_class)
    return annotation


def resolve(item, label_class=None, *, ambiguous=False, user=None):
    from annotation.models import Resolution, ResolutionLabel

    resolution = Resolution.objects.create(item=item, decided_by=user, is_ambiguous=ambiguous)
    if label_class is not None:
        ResolutionLabel.objects.create(resolution=resolution, label_class=label_class)
    return resolution
