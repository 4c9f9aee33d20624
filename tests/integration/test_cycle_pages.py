"""The cycle pages: who may see and do what, launching and cancelling from the page, refusals shown
on the page, the status JSON, a finished cycle's breakdown, escaping, and a fixed number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from active_learning import services
from active_learning.models import Cycle
from annotation.models import Item, LabelClass
from training.models import ModelVersion

from .training_data import label


@pytest.fixture
def no_worker(monkeypatch):
    """Launches queue nothing; the cycles ids that would have gone to the broker are collected."""
    queued = []
    monkeypatch.setattr(services, "queue_chain", queued.append)
    return queued


def run_cycle(project, user, **kwargs):
    """Launch and run a cycle's four steps in this process, as the worker would."""
    kwargs.setdefault("strategy", "mix")
    kwargs.setdefault("batch_size", 12)
    cycle = services.launch(project, user=user, enqueue=False, **kwargs)
    for step in services.STEPS:
        step(cycle.pk)
    cycle.refresh_from_db()
    assert cycle.status == "done", cycle.error
    return cycle


def urls(project, number):
    return {
        "list": reverse("cycles:cycle-list", args=[project.slug]),
        "status": reverse("cycles:cycle-status", args=[project.slug]),
        "detail": reverse("cycles:cycle-detail", args=[project.slug, number]),
        "cancel": reverse("cycles:cycle-cancel", args=[project.slug, number]),
    }


@pytest.mark.django_db
def test_pages_for_each_role(client, project, mle, sme, labeler, outsider, no_worker):
    cycle = services.launch(project, strategy="random", batch_size=5, user=mle)
    url = urls(project, cycle.number)
    for user, code in [(outsider, 404), (labeler, 403), (sme, 200), (mle, 200)]:
        client.force_login(user)
        for name in ("list", "status", "detail"):
            assert client.get(url[name]).status_code == code, (user, name)
    for user, code in [(outsider, 404), (labeler, 403)]:  # a member without the role: 403
        client.force_login(user)
        assert client.post(url["list"], {"strategy": "mix"}).status_code == code
        assert client.post(url["cancel"]).status_code == code

    client.force_login(sme)
    page = client.get(url["list"]).content.decode()
    assert 'data-testid="launch-form"' not in page and "Cancel cycle" not in page
    assert f'data-cycle="{cycle.pk}" data-status="queued"' in page
    assert client.post(url["list"], {"strategy": "mix"}).status_code == 403
    assert client.post(url["cancel"]).status_code == 403
    assert Cycle.objects.get().status == "queued" and Cycle.objects.count() == 1

    project_page = client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
    assert 'data-testid="cycles-link"' in project_page and 'data-testid="quick-launch"' not in project_page
    client.force_login(labeler)
    project_page = client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
    assert 'data-testid="cycles-link"' not in project_page


@pytest.mark.django_db
def test_mle_launches_sees_the_refusal_while_it_runs_and_cancels(
    client, project, mle, no_worker, django_capture_on_commit_callbacks
):
    client.force_login(mle)
    url = urls(project, 1)
    form = {"strategy": "entropy", "batch_size": "7", "trainer": "sklearn_logreg", "weights": "random:1"}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url["list"], {**form, "review_top_k": "1"})
    assert response.status_code == 302 and response["Location"] == url["list"]
    cycle = Cycle.objects.get()
    assert no_worker == [cycle.pk]
    assert (cycle.strategy, cycle.batch_size, cycle.trainer, cycle.weights) == ("entropy", 7, "sklearn_logreg", [])
    assert cycle.review_top_k and cycle.created_by == mle

    page = client.get(url["list"]).content.decode()
    assert "Cycle 1 launched: Entropy, batch 7." in page
    assert f'data-cycle="{cycle.pk}" data-status="queued"' in page and 'data-testid="active-notice"' in page
    assert page.count('class="c-step is-todo"') == 4 and "Cancel cycle 1" in page

    refused = client.post(url["list"], {**form, "batch_size": "9"})
    assert refused.status_code == 409
    text = refused.content.decode()
    assert "cycle 1 of this project is still queued (queued); wait for it to finish or cancel it" in text
    assert 'value="9"' in text  # the form keeps what was typed
    assert Cycle.objects.count() == 1 and no_worker == [cycle.pk]

    cancelled = client.post(url["cancel"], follow=True)
    assert "Cycle 1 cancelled" in cancelled.content.decode()
    cycle.refresh_from_db()
    assert cycle.status == "cancelled" and cycle.error == "Cancelled by mle."
    again = client.post(url["cancel"], {"next": "detail"}, follow=True)
    assert again.redirect_chain[-1][0] == url["detail"]
    assert "only a queued or running cycle can be cancelled" in again.content.decode()


@pytest.mark.django_db
def test_the_project_page_launches_a_cycle_with_the_defaults(
    client, project, mle, no_worker, django_capture_on_commit_callbacks
):
    client.force_login(mle)
    page = client.get(reverse("frontend:project-detail", args=[project.slug])).content.decode()
    assert 'data-testid="quick-launch"' in page and 'data-testid="cycles-link"' in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("cycles:cycle-list", args=[project.slug]), {"strategy": "mix"})
    assert response.status_code == 302
    cycle = Cycle.objects.get()
    default_mix = [[name, weight] for name, weight in services.sampling.DEFAULT_MIX]
    assert (cycle.strategy, cycle.batch_size, cycle.trainer) == ("mix", 100, "sklearn_logreg")
    assert cycle.weights == default_mix and not cycle.review_top_k and no_worker == [cycle.pk]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"batch_size": "0"}, "batch size must be a whole number from 1 to 5000"),
        ({"batch_size": "lots"}, "batch size must be a whole number from 1 to 5000"),
        ({"batch_size": "2.5"}, "batch size must be a whole number from 1 to 5000"),
        ({"weights": "entropy:x"}, "the weight of entropy must be a number, got &#x27;x&#x27;"),
        ({"strategy": "greedy"}, "unknown strategy &#x27;greedy&#x27;"),
        ({"trainer": "keras_cnn_v9"}, "unknown trainer &#x27;keras_cnn_v9&#x27;"),
    ],
)
@pytest.mark.django_db
def test_a_bad_field_is_shown_on_the_page_and_nothing_is_created(client, project, mle, no_worker, form, message):
    client.force_login(mle)
    response = client.post(reverse("cycles:cycle-list", args=[project.slug]), {"strategy": "mix", **form})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="launch-error"' in page and message in page and 'aria-invalid="true"' in page
    assert not Cycle.objects.exists() and not no_worker


@pytest.mark.django_db
def test_status_json_and_the_detail_page_of_a_finished_cycle(
    client, al_project, mle, labeler, django_assert_max_num_queries
):
    cycle = run_cycle(al_project, mle)
    selections = list(cycle.selections.order_by("position"))
    label(selections[0].item, labeler, al_project.label_classes.get(name="crow"))  # one of the batch labeled
    url = urls(al_project, cycle.number)
    client.force_login(mle)

    status = client.get(url["status"], {"ids": f"{cycle.pk},x"}).json()["cycles"]
    version = cycle.model_version
    assert status == [
        {
            **services.progress_payload(Cycle.objects.select_related("model_version").get()),
            "status_label": "Done",
            "steps": ["done"] * 4,
            "accuracy": version.headline_accuracy,
            "model_url": reverse("training:model-detail", args=[al_project.slug, version.short_id]),
        }
    ]
    assert status[0]["selected"] == 12 and status[0]["progress"] == 1.0
    assert client.get(url["status"]).json() == {"cycles": []}  # no ids: the active cycles, none

    listing = client.get(url["list"]).content.decode()
    assert 'data-status="done"' in listing and "Done · 100%" in listing and 'data-cell="selected">12<' in listing
    assert f">{version.short_id}</a>" in listing and "chart--curve" in listing and 'data-point="1"' in listing

    with django_assert_max_num_queries(9):  # 4 for the user and project, 5 for the cycle and its batch
        page = client.get(url["detail"]).content.decode()
    by_strategy = cycle.summary["by_strategy"]
    assert set(by_strategy) == {"margin", "error_model", "random"}
    for name, block in by_strategy.items():
        row = f'<tr data-strategy="{name}"><td><code>{name}</code></td><td class="num strong">{block["n"]}</td>'
        assert row in page and f'aria-label="Share of {name}"' in page
    assert 'data-stat="labeled"' in page and ">1</div>" in page.split('data-stat="labeled"')[1][:200]
    assert page.count('<li class="thumb" data-item=') == 12
    for s in selections:
        assert reverse("item-file", args=[s.item_id, "thumbnail"]) in page
    assert 'r="7"' in page and "cycle 1 · " in page  # this cycle circled on the learning curve
    assert 'data-table="timings"' in page and "Train &amp; evaluate" in page
    assert reverse("training:model-detail", args=[al_project.slug, version.short_id]) in page


@pytest.mark.django_db
def test_pages_escape_class_names_and_external_ids(client, al_project, mle):
    LabelClass.objects.filter(project=al_project, name="crow").update(name="<b>crow</b>")
    for item in Item.objects.filter(project=al_project):
        Item.objects.filter(pk=item.pk).update(external_id=f"<script>alert({item.pk})</script>")
    cycle = run_cycle(al_project, mle)
    client.force_login(mle)
    url = urls(al_project, cycle.number)
    for page in (client.get(url["list"]).content.decode(), client.get(url["detail"]).content.decode()):
        assert "<script>alert(" not in page and "<b>crow</b>" not in page
    assert "&lt;script&gt;alert(" in client.get(url["detail"]).content.decode()


def _queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.django_db
def test_list_and_status_queries_do_not_grow_with_cycles(client, project, mle):
    def add_cycle(number, status):
        version = ModelVersion.objects.create(project=project, trainer="sklearn_logreg", created_by=mle)
        return Cycle.objects.create(
            project=project, number=number, strategy="mix", batch_size=10, trainer="sklearn_logreg",
            model_version=version, status=status, stage="done" if status == "done" else "training",
            summary={"selected": 10} if status == "done" else {}, created_by=mle,
        )  # fmt: skip

    client.force_login(mle)
    url = urls(project, 1)
    add_cycle(1, "done")
    one = (_queries(client, url["list"]), _queries(client, url["status"] + "?ids=1"))
    for number in range(2, 6):
        add_cycle(number, "done" if number < 5 else "running")
    ids = ",".join(str(pk) for pk in Cycle.objects.values_list("pk", flat=True))
    five = (_queries(client, url["list"]), _queries(client, url["status"] + "?ids=" + ids))
    assert one == five
    assert five[0] <= 6  # session, user, project, role, the cycles, the learning curve
