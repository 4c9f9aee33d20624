"""The demo project: scikit-learn's bundled handwritten digits, demo users and simulated labelers."""

import csv
import secrets
import tempfile
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from PIL import Image

from .. import simulation
from ..models import Annotation, AnnotationLabel, Guideline, Membership, Project, Role, Source
from .item_import import import_items
from .labeling import refresh_queue_state
from .projects import create_project

DEMO_SLUG = "digits"
DEMO_USERS = [
    ("labeler1", Role.LABELER),
    ("labeler2", Role.LABELER),
    ("labeler3", Role.LABELER),
    ("sme", Role.SME),
    ("mle", Role.MLE),
]
IMAGE_SIZE = 96
GOLD_ITEMS = 100
GUIDELINE = """# Handwritten digits

Label each image with the digit it shows.

- Press the digit's key (`0` to `9`).
- If you cannot tell which digit it is, choose **unclear** (key `q`) rather than guessing.
- A 1 has no bar at the top; a 7 does. An 8 has two closed loops; a 3 has none.
"""


def render_digit(pixels):
    """An (8, 8) array of ink levels 0..16 as a dark-on-light grayscale image a person can read."""
    gray = (255 - pixels * (255 / 16)).clip(0, 255).astype(np.uint8)
    return Image.fromarray(gray, mode="L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)


def ink_slices(images):
    """'light' / 'medium' / 'heavy' by total ink, in terciles: a slice to compare accuracy on."""
    ink = images.reshape(len(images), -1).sum(axis=1)
    low, high = np.quantile(ink, [1 / 3, 2 / 3])
    return np.where(ink <= low, "light", np.where(ink <= high, "medium", "heavy"))


def create_demo(*, password=None, simulate_labelers=0, seed=0, log=print):
    """Create the demo project and users; returns (project, {username: password})."""
    from sklearn.datasets import load_digits

    if Project.objects.filter(slug=DEMO_SLUG).exists():
        raise ValueError(f"the demo project {DEMO_SLUG!r} already exists")
    User = get_user_model()
    passwords = {}
    users = {}
    for username, _role in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=username)
        passwords[username] = password or secrets.token_urlsafe(8)
        user.set_password(passwords[username])
        user.save()
        users[username] = user

    project = create_project(
        slug=DEMO_SLUG,
        name="Handwritten digits",
        data_kind="image",
        classes=[str(d) for d in range(10)],
        ambiguity_classes=["unclear"],
        overlap=3,
        consistency_fraction=0.2,
        seed=seed,
        created_by=users["mle"],
    )
    Membership.objects.bulk_create(
        Membership(user=users[name], project=project, role=role) for name, role in DEMO_USERS if role != Role.MLE
    )
    project.description = "scikit-learn's 1,797 handwritten digits (8x8, upscaled), digits 0-9 plus 'unclear'."
    project.save(update_fields=["description"])
    guideline = Guideline.objects.create(
        project=project, version=1, text=GUIDELINE, author=users["sme"], published_at=timezone.now()
    )

    digits = load_digits()
    rng = np.random.default_rng(seed)
    gold_rows = set(rng.choice(len(digits.target), size=GOLD_ITEMS, replace=False).tolist())
    slices = ink_slices(digits.images)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        with open(folder / "manifest.csv", "w", newline="") as manifest:
            writer = csv.writer(manifest)
            writer.writerow(["filename", "ink", "gold"])
            for i, (pixels, target) in enumerate(zip(digits.images, digits.target, strict=True)):
                name = f"digit_{i:04d}.png"
                render_digit(pixels).save(folder / name)
                writer.writerow([name, slices[i], target if i in gold_rows else ""])
        batch = import_items(project, folder, user=users["mle"], source_name="sklearn digits")
    log(f"Imported {batch.created_count} digit images ({batch.rejected_count} rejected).")

    if simulate_labelers:
        truth = {f"digit_{i:04d}.png": int(t) for i, t in enumerate(digits.target)}
        count = simulate_labels(project, simulate_labelers, truth, guideline, rng)
        log(f"Added {count} labels from {simulate_labelers} simulated labelers.")
    return project, passwords


SIMULATED_PROFILES = ("careful", "mixer", "noisy")


def _profile_confusion(profile, class_index):
    k = len(class_index)
    if profile == "careful":
        return simulation.careful_confusion(k, accuracy=0.97)
    if profile == "mixer":
        pairs = [(class_index["1"], class_index["7"]), (class_index["3"], class_index["8"])]
        return simulation.mixing_confusion(k, pairs, mix=0.35)
    return simulation.noisy_confusion(k, accuracy=0.75, ambiguity_index=class_index["unclear"])


@transaction.atomic
def simulate_labels(project, n_labelers, truth_by_external_id, guideline, rng):
    """Labels from simulated labelers of known confusion, written as `source=simulated`.

    Profiles cycle through careful (97 % right), mixer (confuses 1/7 and 3/8) and noisy (75 %
    right, often 'unclear'). Consistency-sample and gold items get `overlap` labels; half of
    the rest get one, leaving the other half for real labelers.
    """
    User = get_user_model()
    classes = list(project.label_classes.order_by("order"))
    class_index = {c.name: i for i, c in enumerate(classes)}
    profiles = [SIMULATED_PROFILES[m % 3] for m in range(n_labelers)]
    labelers = []
    for m, profile in enumerate(profiles):
        suffix = "" if m < 3 else f"-{m // 3 + 1}"
        user, _ = User.objects.get_or_create(username=f"sim-{profile}{suffix}@{project.slug}")
        user.set_unusable_password()
        user.save()
        Membership.objects.get_or_create(user=user, project=project, defaults={"role": Role.LABELER})
        labelers.append(user)

    items = list(project.items.order_by("pk").values_list("pk", "external_id", "in_consistency_sample", "gold"))
    truth = np.array([class_index[str(truth_by_external_id[ext])] for _, ext, _, _ in items])
    needs_overlap = np.array([sample or gold is not None for _, _, sample, gold in items])
    mask = simulation.assign_labelers(len(items), n_labelers, needs_overlap, project.overlap, 0.5, rng)
    confusions = np.stack([_profile_confusion(p, class_index) for p in profiles])
    labels = simulation.simulate_labels(truth, confusions, mask, rng)

    rows, cols = np.nonzero(mask)
    durations = rng.lognormal(mean=7.3, sigma=0.4, size=rows.size).astype(int)  # ~1.5 s median
    annotations = Annotation.objects.bulk_create(
        (
            Annotation(
                item_id=items[i][0],
                labeler=labelers[m],
                guideline=guideline,
                duration_ms=int(d),
                source=Source.SIMULATED,
                unsure=profiles[m] == "noisy" and labels[i, m] != truth[i] and rng.random() < 0.5,
            )
            for i, m, d in zip(rows, cols, durations, strict=True)
        ),
        batch_size=2000,
    )
    AnnotationLabel.objects.bulk_create(
        (
            AnnotationLabel(annotation=a, label_class=classes[int(labels[i, m])])
            for a, i, m in zip(annotations, rows, cols, strict=True)
        ),
        batch_size=2000,
    )
    refresh_queue_state(project)
    return len(annotations)
