import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Count
from django.urls import reverse

from annotation.models import Annotation, GoldLabel, Guideline, Item, LabelClass, Membership, Project

pytestmark = pytest.mark.django_db


def test_create_project_command(capsys):
    call_command(
        "create_project", "scratches", "--name", "Scratches", "--data-kind", "image",
        "--classes", "deep,shallow", "--ambiguity", "unclear", "--overlap", "3", "--overlap-fraction", "0.2",
    )  # fmt: skip
    project = Project.objects.get(slug="scratches")
    assert (project.overlap, project.consistency_fraction, project.task_type) == (3, 0.2, "single_label")
    classes = list(project.label_classes.values_list("name", "shortcut", "is_ambiguity"))
    assert classes == [("deep", "1", False), ("shallow", "2", False), ("unclear", "3", True)]
    assert "Created project scratches" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--classes", "a,a"], "classes: class names repeat: a"),
        (["--classes", "a", "--overlap", "0"], "overlap: overlap must be at least 1"),
        (["--classes", "a", "--splits", "0.5,0.5"], "--splits must be three numbers"),
        (["--classes", "a", "--owner", "ghost"], "--owner: no user named 'ghost'"),
    ],
)
def test_create_project_command_errors(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_project", "x", "--name", "X", "--data-kind", "text", *args)
    assert not Project.objects.exists()


@pytest.fixture(scope="module")
def demo_db(django_db_setup, django_db_blocker, tmp_path_factory):
    """The demo is built once for this module (it renders 1,797 images)."""
    from django.conf import settings

    with django_db_blocker.unblock():
        old_media = settings.MEDIA_ROOT
        settings.MEDIA_ROOT = tmp_path_factory.mktemp("demo-media")
        call_command("demo", "--simulate-labelers", "3", "--password", "demo-pass-1")
        yield
        Project.objects.all().delete()
        get_user_model().objects.all().delete()
        settings.MEDIA_ROOT = old_media


def test_demo_builds_the_digits_project(demo_db):
    project = Project.objects.get(slug="digits")
    assert project.items.count() == 1797
    assert (project.overlap, project.consistency_fraction) == (3, 0.2)
    names = list(project.label_classes.values_list("name", "shortcut"))
    assert names == [(str(d), str(d)) for d in range(10)] + [("unclear", "q")]
    assert LabelClass.objects.get(project=project, name="unclear").is_ambiguity
    roles = dict(Membership.objects.filter(project=project, user__username__in=["labeler1", "sme", "mle"])
                 .values_list("user__username", "role"))  # fmt: skip
    assert roles == {"labeler1": "labeler", "sme": "sme", "mle": "mle"}
    assert get_user_model().objects.get(username="mle").check_password("demo-pass-1")
    assert GoldLabel.objects.filter(item__project=project).count() == 100
    assert Guideline.objects.get(project=project).published_at is not None
    assert set(project.items.values_list("metadata__ink", flat=True)) == {"light", "medium", "heavy"}
    item = project.items.first()
    assert item.image.name.endswith(".png") and (item.width, item.height) == (96, 96)


def test_demo_simulated_labels_have_the_designed_confusion(demo_db):
    project = Project.objects.get(slug="digits")
    simulated = Annotation.objects.filter(item__project=project, source="simulated")
    assert simulated.values("labeler").distinct().count() == 3
    sample = project.items.filter(in_consistency_sample=True).annotate(n=Count("annotations__labeler", distinct=True))
    assert set(sample.values_list("n", flat=True)) == {3}

    # Measured against the digits' true targets, each profile behaves as designed.
    from sklearn.datasets import load_digits

    target = load_digits().target
    rows = simulated.values_list("labeler__username", "item__external_id", "labels__name")
    by_labeler = {}
    for username, external_id, label in rows:
        truth = str(target[int(external_id[6:10])])
        by_labeler.setdefault(username.split("@")[0], []).append((truth, label))

    def rate(name, truth_in, label_in=None):
        pairs = [(t, lab) for t, lab in by_labeler[name] if t in truth_in]
        return sum(lab in label_in if label_in else lab == t for t, lab in pairs) / len(pairs)

    digits = [str(d) for d in range(10)]
    assert rate("sim-careful", digits) > 0.94
    assert rate("sim-mixer", ["1", "7"], label_in=["1", "7"]) > 0.9
    assert rate("sim-mixer", ["1", "3", "7", "8"]) < 0.8  # but it often swaps them
    assert rate("sim-careful", ["1", "3", "7", "8"]) > 0.94
    assert 0.65 < rate("sim-noisy", digits) < 0.85
    assert rate("sim-noisy", digits, label_in=["unclear"]) > 0.03


def test_demo_refuses_a_second_run_but_if_empty_is_quiet(demo_db, capsys):
    with pytest.raises(CommandError, match="the demo project 'digits' already exists"):
        call_command("demo")
    call_command("demo", "--if-empty")
    assert "Projects exist already" in capsys.readouterr().out
    assert Item.objects.count() == 1797


def test_admin_lists_every_model_and_each_changelist_renders(client, demo_db):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin)
    index = client.get(reverse("admin:index")).content.decode()
    models = [m for app in ("annotation", "training", "active_learning") for m in apps.get_app_config(app).get_models()]
    for model in models:
        if model.__name__ in {"AnnotationLabel", "GoldLabelClass", "ResolutionLabel"}:
            continue  # through tables are edited inline on their parent
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        assert url in index, model
        assert client.get(url, {"q": "1"}).status_code == 200, url
    admin.delete()
