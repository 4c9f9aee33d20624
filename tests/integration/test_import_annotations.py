"""Import of existing annotations (crowd labels) and gold: the service and the command.

The crowd tests check counts against the table in ../shared/datasets/crowd/README.md; the
numbers are copied from it, never recomputed from the data here.
"""

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.management import CommandError, call_command

from annotation.errors import ImportRejected
from annotation.models import Annotation, GoldLabel, ImportBatch, Item, LabelClass, Membership
from annotation.services import annotation_import
from annotation.services.annotation_import import import_annotations, labeler_username
from annotation.services.projects import create_project
from tests.conftest import CROWD_DIR

pytestmark = pytest.mark.django_db
COLUMNS = ("item", "worker", "answer")
TRUTH_COLUMNS = ("item", "truth")
GOOD = "item,worker,answer\na,w1,crow\na,w2,dove\nb,w1,owl\n"


def write(tmp_path, content, name="labels.csv"):
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def current_labels(project):
    """{(item, worker username): [class names]} of the current annotations."""
    rows = Annotation.objects.current().filter(item__project=project).prefetch_related("labels")
    return {
        (a.item.external_id, a.labeler.username.rsplit("@", 1)[0]): sorted(c.name for c in a.labels.all())
        for a in rows.select_related("item", "labeler")
    }


def written_rows(project):
    """Counts of every kind of row an import writes, to show that a run wrote nothing."""
    return {
        "batches": ImportBatch.objects.filter(project=project).count(),
        "items": Item.objects.filter(project=project).count(),
        "annotations": Annotation.objects.filter(item__project=project).count(),
        "gold": GoldLabel.objects.filter(item__project=project).count(),
        "users": get_user_model().objects.count(),
        "members": Membership.objects.filter(project=project).count(),
        "classes": LabelClass.objects.filter(project=project).count(),
    }


# --- what an import creates --------------------------------------------------------------------


def test_import_creates_items_labelers_annotations_and_gold(project, tmp_path):
    truth = write(tmp_path, "item,truth\na,crow\nz,owl\n", "truth.csv")
    batch = import_annotations(
        project, write(tmp_path, GOOD), columns=COLUMNS, truth_path=truth, truth_columns=TRUTH_COLUMNS
    )

    assert (batch.kind, batch.source_name) == ("annotations", "labels.csv")
    assert (batch.created_count, batch.skipped_count, batch.rejected_count, batch.errors) == (3, 0, 0, [])
    s = batch.summary
    assert (s["items"], s["items_created"], s["labelers"], s["labelers_created"], s["labels"]) == (2, 2, 2, 2, 3)
    assert (s["classes"], s["classes_created"]) == (["crow", "dove", "owl"], 0)
    assert (s["duplicate_pairs"], s["duplicate_rows"], s["conflicting_duplicate_pairs"]) == (0, 0, 0)
    # z has gold but no labels: reported, not created.
    assert (s["gold_loaded"], s["gold_without_labels"], s["gold_without_labels_examples"]) == (1, 1, ["z"])

    items = {i.external_id: i for i in Item.objects.filter(project=project)}
    assert set(items) == {"a", "b"}
    assert all(i.text == "" and i.sha256 == "" and not i.image for i in items.values())
    assert all(i.split in {"train", "dev", "test"} and i.import_batch == batch for i in items.values())
    assert list(items["a"].gold.labels.values_list("name", flat=True)) == ["crow"]

    assert current_labels(project) == {("a", "w1"): ["crow"], ("a", "w2"): ["dove"], ("b", "w1"): ["owl"]}
    assert set(Annotation.objects.values_list("source", "import_batch", "is_current")) == {("imported", batch.pk, True)}
    for worker in ("w1", "w2"):
        account = get_user_model().objects.get(username=labeler_username(project.slug, worker))
        assert not account.has_usable_password()
        assert Membership.objects.get(user=account, project=project).role == "labeler"


def test_duplicate_pairs_keep_every_row_and_the_last_is_current(project, tmp_path):
    rows = "item,worker,answer\na,w1,crow\na,w1,dove\nb,w1,owl\na,w1,dove\nb,w1,owl\nb,w2,owl\n"
    batch = import_annotations(project, write(tmp_path, rows), columns=COLUMNS)

    s = batch.summary
    assert (s["duplicate_pairs"], s["duplicate_rows"], s["conflicting_duplicate_pairs"]) == (2, 3, 1)
    assert batch.created_count == Annotation.objects.count() == 6
    assert current_labels(project) == {("a", "w1"): ["dove"], ("b", "w1"): ["owl"], ("b", "w2"): ["owl"]}
    history = Annotation.objects.filter(item__external_id="a").order_by("created_at", "id")
    assert [(a.is_current, a.labels.get().name) for a in history] == [
        (False, "crow"),
        (False, "dove"),
        (True, "dove"),
    ]


# --- re-import ---------------------------------------------------------------------------------


def test_reimport_adds_nothing(project, tmp_path):
    rows = write(tmp_path, GOOD + "a,w1,dove\n")  # with a duplicate pair too
    truth = write(tmp_path, "item,truth\na,crow\nb,owl\nz,owl\n", "truth.csv")
    kwargs = {"columns": COLUMNS, "truth_path": truth, "truth_columns": TRUTH_COLUMNS}
    import_annotations(project, rows, **kwargs)
    before = written_rows(project)

    again = import_annotations(project, rows, **kwargs)

    assert written_rows(project) == {**before, "batches": before["batches"] + 1}
    assert (again.created_count, again.skipped_count, again.rejected_count) == (0, 4, 0)
    s = again.summary
    assert (s["items_created"], s["labelers_created"], s["classes_created"]) == (0, 0, 0)
    assert (s["gold_loaded"], s["gold_skipped"], s["gold_without_labels"]) == (0, 2, 1)


def test_reimport_with_a_changed_label_is_an_edit_that_keeps_history(project, tmp_path):
    import_annotations(project, write(tmp_path, GOOD), columns=COLUMNS)
    changed = write(tmp_path, GOOD.replace("b,w1,owl", "b,w1,crow"), "changed.csv")

    batch = import_annotations(project, changed, columns=COLUMNS)

    assert (batch.created_count, batch.skipped_count, batch.summary["annotations_edited"]) == (1, 2, 1)
    assert current_labels(project)[("b", "w1")] == ["crow"]
    history = Annotation.objects.filter(item__external_id="b").order_by("created_at", "id")
    assert [(a.is_current, a.labels.get().name, a.import_batch == batch) for a in history] == [
        (False, "owl", False),
        (True, "crow", True),
    ]


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "field", "message"),
    [
        ("c", "row", "has 1 column(s); 3 are needed"),
        ("c,w1", "row", "has 2 column(s); 3 are needed"),
        (",w1,crow", "item", "the item ('item') is empty"),
        ("c,  ,crow", "labeler", "the labeler ('worker') is empty"),
        ("c,w1,", "label", "the label ('answer') is empty"),
        ("c,w1,heron", "label", "unknown label 'heron' (the project's classes: crow, dove, owl, unclear)"),
        # A single-label project reads the cell as one class name, separators and all.
        ('c,w1,"crow;dove"', "label", "unknown label 'crow;dove'"),
        ("c,w1,crow|dove", "label", "unknown label 'crow|dove'"),
        ("x" * 256 + ",w1,crow", "item", "item id is longer than 255 characters"),
    ],
)
def test_a_bad_row_is_rejected_with_its_line_and_the_good_rows_land(project, tmp_path, bad_row, field, message):
    rows = f"item,worker,answer\na,w1,crow\n{bad_row}\nb,w2,owl\n"

    batch = import_annotations(project, write(tmp_path, rows), columns=COLUMNS)

    assert batch.rejected_count == 1
    [error] = batch.errors
    assert (error["row"], error["field"]) == (3, field)
    assert error["message"].startswith(message)
    assert current_labels(project) == {("a", "w1"): ["crow"], ("b", "w2"): ["owl"]}
    assert batch.created_count == 2


def test_an_inactive_class_is_rejected(project, tmp_path):
    project.label_classes.filter(name="dove").update(is_active=False)

    batch = import_annotations(project, write(tmp_path, GOOD), columns=COLUMNS)

    assert batch.errors == [{"row": 3, "field": "label", "message": "class 'dove' is inactive (merged or retired)"}]
    assert set(current_labels(project)) == {("a", "w1"), ("b", "w1")}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "labels.csv is empty"),
        (b"\r\n  \r\n", "labels.csv is empty"),
        (b"item,worker,answer\r\n", "labels.csv has a header but no data rows"),
        (
            b"item,labeler,answer\na,w1,crow\n",
            "labels.csv has no column 'worker' (its header has: item, labeler, answer)",
        ),
        (b"item,worker,worker,answer\na,w1,w1,crow\n", "labels.csv has 2 columns named 'worker'; rename one"),
        (
            "item,worker,answer\na,w1,crow\nb\xe9,w1,crow\n".encode("latin-1"),
            "labels.csv is not UTF-8 text: byte 0xe9 on line 3 cannot be decoded; save it as UTF-8",
        ),
        (b"item\x00\x01\x02,worker,answer\n", "labels.csv holds NUL characters: it looks like a binary file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "labels.csv is not UTF-8 text: byte 0x89 on line 1"),
    ],
)
def test_an_unreadable_file_is_rejected_whole_and_nothing_is_written(project, tmp_path, content, message):
    before = written_rows(project)

    with pytest.raises(ImportRejected) as caught:
        import_annotations(project, write(tmp_path, content), columns=COLUMNS)

    assert caught.value.message.startswith(message)
    assert caught.value.field == "file"
    assert written_rows(project) == before


def test_a_file_over_the_size_limit_is_rejected(project, tmp_path, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_UPLOAD_BYTES": len(GOOD) - 1}
    before = written_rows(project)

    with pytest.raises(
        ImportRejected, match=re.escape(f"labels.csv is larger than the upload limit of {len(GOOD) - 1} bytes")
    ):
        import_annotations(project, write(tmp_path, GOOD), columns=COLUMNS)

    assert written_rows(project) == before


def test_a_bad_truth_file_rejects_the_whole_import(project, tmp_path):
    before = written_rows(project)
    truth = write(tmp_path, "item,label\na,crow\n", "truth.csv")

    with pytest.raises(ImportRejected, match=re.escape("truth.csv has no column 'truth'")):
        import_annotations(
            project, write(tmp_path, GOOD), columns=COLUMNS, truth_path=truth, truth_columns=TRUTH_COLUMNS
        )

    assert written_rows(project) == before


def test_gold_is_never_overwritten_and_a_conflict_in_the_file_is_rejected(project, tmp_path):
    rows = write(tmp_path, GOOD)
    first = write(tmp_path, "item,truth\na,crow\nb,owl\nb,owl\nb,dove\n", "truth.csv")
    batch = import_annotations(project, rows, columns=COLUMNS, truth_path=first, truth_columns=TRUTH_COLUMNS)
    assert batch.errors == [
        {"row": 5, "field": "label", "message": "item 'b' has a different gold label on line 3", "file": "truth.csv"}
    ]
    assert (batch.summary["gold_loaded"], batch.summary["gold_skipped"]) == (2, 1)

    second = write(tmp_path, "item,truth\na,dove\n", "truth2.csv")
    batch = import_annotations(project, rows, columns=COLUMNS, truth_path=second, truth_columns=TRUTH_COLUMNS)

    assert batch.errors[0]["message"] == "item 'a' already has gold 'crow'; an import does not replace gold"
    assert list(GoldLabel.objects.get(item__external_id="a").labels.values_list("name", flat=True)) == ["crow"]


def test_gold_is_loaded_for_items_already_in_the_project(project, tmp_path):
    project.consistency_fraction = 0.0
    project.save()
    import_annotations(project, write(tmp_path, GOOD), columns=COLUMNS)
    assert not Item.objects.get(external_id="b").in_consistency_sample
    later = write(tmp_path, "item,worker,answer\nc,w3,owl\n", "later.csv")
    truth = write(tmp_path, "item,truth\nb,owl\n", "truth.csv")

    batch = import_annotations(project, later, columns=COLUMNS, truth_path=truth, truth_columns=TRUTH_COLUMNS)

    assert (batch.summary["gold_loaded"], batch.summary["gold_without_labels"]) == (1, 0)
    b = Item.objects.get(external_id="b")
    assert b.gold.labels.get().name == "owl"
    assert not b.in_consistency_sample  # the sample is the seeded draw; gold needs k labels anyway


def test_stored_errors_are_capped_but_all_are_counted(project, tmp_path):
    bad = "".join(f"i{n},w1,heron\n" for n in range(annotation_import.MAX_STORED_ERRORS + 5))

    batch = import_annotations(project, write(tmp_path, GOOD + bad), columns=COLUMNS)

    assert batch.rejected_count == annotation_import.MAX_STORED_ERRORS + 5
    assert len(batch.errors) == annotation_import.MAX_STORED_ERRORS
    assert batch.created_count == 3


# --- file formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("bom", ["", "\ufeff"], ids=["no-BOM", "BOM"])
@pytest.mark.parametrize("final_newline", [True, False], ids=["final-newline", "no-final-newline"])
def test_line_endings_bom_and_a_missing_final_newline(project, tmp_path, newline, bom, final_newline):
    lines = ["Item ,Worker,ANSWER", "a,w1,crow", "a,w1,heron", "", "b,w2,owl"]
    text = bom + newline.join(lines) + (newline if final_newline else "")

    batch = import_annotations(project, write(tmp_path, text), columns=COLUMNS)

    assert [e["row"] for e in batch.errors] == [3]  # the header is line 1; blank lines count
    assert current_labels(project) == {("a", "w1"): ["crow"], ("b", "w2"): ["owl"]}


def test_utf16_with_a_bom_is_read(project, tmp_path):
    batch = import_annotations(project, write(tmp_path, GOOD.encode("utf-16")), columns=COLUMNS)

    assert batch.created_count == 3


def test_no_header_and_tab_delimiter_through_the_command(project, tmp_path):
    rows = write(tmp_path, "a\tw1\tcrow\na\tw2\tdove\n", "labels.tsv")
    truth = write(tmp_path, "a\tcrow\n", "truth.tsv")

    call_command(
        "import_annotations", project.slug, str(rows), "--no-header", "--delimiter", "TAB", "--truth", str(truth)
    )

    assert current_labels(project) == {("a", "w1"): ["crow"], ("a", "w2"): ["dove"]}
    assert GoldLabel.objects.get().item.external_id == "a"


@pytest.mark.parametrize(("name", "delimiter"), [("TAB", "\t"), ("\\t", "\t"), ("\t", "\t"), (";", ";")])
def test_delimiter_names(project, tmp_path, name, delimiter):
    rows = GOOD.replace(",", delimiter)

    batch = import_annotations(project, write(tmp_path, rows), columns=COLUMNS, delimiter=name)

    assert batch.created_count == 3


def test_create_classes_adds_missing_names_numerically_when_all_are_integers(tmp_path):
    numbers = create_project(slug="numbers", name="Numbers", data_kind="text", classes=["0"])
    rows = write(tmp_path, "item,worker,answer\na,w1,10\na,w2,2\nb,w1,1\nb,w2,0\n")

    batch = import_annotations(numbers, rows, columns=COLUMNS, create_classes=True)

    assert (batch.summary["classes"], batch.summary["classes_created"]) == (["0", "1", "2", "10"], 3)
    assert list(numbers.label_classes.order_by("order").values_list("name", flat=True)) == ["0", "1", "2", "10"]
    assert batch.created_count == 4


def test_create_classes_adds_other_names_alphabetically(tmp_path):
    words = create_project(slug="words", name="Words", data_kind="text", classes=["neutral"])
    rows = write(tmp_path, "item,worker,answer\na,w1,pos\nb,w1,neg\nc,w1,10\n")
    truth = write(tmp_path, "item,truth\na,mixed\n", "truth.csv")

    import_annotations(words, rows, columns=COLUMNS, truth_path=truth, truth_columns=TRUTH_COLUMNS, create_classes=True)

    names = list(words.label_classes.order_by("order").values_list("name", flat=True))
    assert names == ["neutral", "10", "mixed", "neg", "pos"]


def test_a_multi_label_project_splits_the_label_cell_on_pipes(tmp_path):
    tags = create_project(slug="tags", name="Tags", data_kind="text", classes=["x", "y"], task_type="multi_label")

    import_annotations(tags, write(tmp_path, "item,worker,answer\na,w1,x|y\na,w2,y\n"), columns=COLUMNS)

    assert current_labels(tags) == {("a", "w1"): ["x", "y"], ("a", "w2"): ["y"]}


# --- labeler accounts --------------------------------------------------------------------------


def test_one_labeler_account_per_worker_and_project(project, other_project, tmp_path):
    import_annotations(project, write(tmp_path, GOOD), columns=COLUMNS)
    other = write(tmp_path, "item,worker,answer\nr1,w1,pos\n", "other.csv")
    import_annotations(other_project, other, columns=COLUMNS)

    assert labeler_username("birds", "w1") != labeler_username("reviews", "w1")
    assert Membership.objects.filter(user__username__startswith="w1@").count() == 2
    assert get_user_model().objects.filter(username__startswith="w1@").count() == 2


@pytest.mark.parametrize("worker", ["A2 6/ü", "x" * 400, "w@1", "a-b_c.d+e"])
def test_usernames_are_valid_and_fit_whatever_the_worker_id(worker):
    slug = "s" * 100  # the longest slug

    username = labeler_username(slug, worker)

    assert len(username) <= 150
    UnicodeUsernameValidator()(username)
    assert username.endswith("@" + slug)
    assert username != labeler_username(slug, worker + "x")


# --- the command and its cost ------------------------------------------------------------------


def test_command_prints_a_report(project, tmp_path):
    rows = write(tmp_path, GOOD + "a,w1,dove\nc,w1,heron\n")
    truth = write(tmp_path, "item,truth\na,crow\nz,owl\n", "truth.csv")
    out, err = io.StringIO(), io.StringIO()

    call_command(
        "import_annotations",
        "birds",
        str(rows),
        "--columns",
        "item,worker,answer",
        "--truth",
        str(truth),
        "--truth-columns",
        "item,truth",
        stdout=out,
        stderr=err,
    )

    report = out.getvalue()
    assert "Imported labels.csv into birds" in report
    assert "items           2 (2 new)" in report
    assert "1 (item, labeler) pairs labelled more than once, 1 repeated rows, 1 pairs with different labels" in report
    assert "1 gold items have no labels" in report
    assert "rejected line 6 [label]: unknown label 'heron'" in err.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["birds", "{empty}", "--columns", "item,worker,answer"], "empty.csv is empty"),
        (["nope", "{empty}", "--columns", "item,worker,answer"], "no project with slug 'nope'"),
        (["birds", "{empty}"], "name the file's columns with --columns"),
        (["birds", "{empty}", "--columns", "item,worker"], "--columns takes 3 comma-separated column names"),
        (["birds", "{empty}", "--no-header", "--delimiter", "::"], "delimiter '::' is not one character"),
        (["birds", "{missing}", "--no-header"], "missing.csv does not exist"),
    ],
)
def test_command_refuses_bad_input_with_a_message(project, tmp_path, args, message):
    empty = write(tmp_path, "", "empty.csv")
    args = [a.format(empty=empty, missing=tmp_path / "missing.csv") for a in args]

    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("import_annotations", *args)

    assert not ImportBatch.objects.exists()


def test_import_does_not_query_per_row(project, tmp_path, django_assert_max_num_queries):
    # 4,000 rows over 2 chunks; per-row queries would be thousands. Re-import reads the
    # existing annotations too; the queue refresh at the end adds a fixed handful.
    rows = "item,worker,answer\n" + "".join(f"i{n % 400},w{n // 400},crow\n" for n in range(4000))
    path = write(tmp_path, rows)
    with django_assert_max_num_queries(30):
        import_annotations(project, path, columns=COLUMNS)
    with django_assert_max_num_queries(30):
        again = import_annotations(project, path, columns=COLUMNS)
    assert again.skipped_count == 4000


# --- the real crowd datasets -------------------------------------------------------------------

# Copied from the table in ../shared/datasets/crowd/README.md.
CROWD = {
    "D_Product": {
        "args": ["answer.csv", "--columns", "question,worker,answer", "--truth", "truth.csv"],
        "truth_columns": "question,truth",
        "items": 8315, "workers": 176, "labels": 24945, "classes": 2, "gold": 8315,
    },
    "D_PosSent": {
        "args": ["answer.csv", "--columns", "id,worker,answer", "--truth", "truth.csv"],
        "truth_columns": "q,truth",
        "items": 1000, "workers": 85, "labels": 20000, "classes": 2, "gold": 1000,
    },
    "S_Rel": {
        "args": ["answer.csv", "--columns", "question,worker,answer", "--truth", "truth.csv"],
        "truth_columns": "question,truth",
        "items": 20232, "workers": 766, "labels": 98453, "classes": 4, "gold": 4460, "duplicate_rows": 1570,
    },
    "S_Adult": {
        "args": ["answer.csv", "--columns", "question,worker,answer", "--truth", "truth.csv"],
        "truth_columns": "question,truth",
        # 1,517 gold items listed, 333 of them labelled: the other 1,184 have no worker label.
        "items": 11040, "workers": 825, "labels": 92721, "classes": 4, "gold": 333, "gold_without_labels": 1184,
        "duplicate_rows": 2922,
    },
    "bluebirds": {
        "args": ["answer.csv", "--columns", "question,worker,answer", "--truth", "truth.csv"],
        "truth_columns": "question,truth",
        "items": 108, "workers": 39, "labels": 4212, "classes": 2, "gold": 108,
    },
    "RTE": {
        "args": ["rte_crowd.txt", "--no-header", "--delimiter", "TAB", "--truth", "rte_truth.txt"],
        "items": 800, "workers": 164, "labels": 8000, "classes": 2, "gold": 800,
    },
}  # fmt: skip
# The README counts repeated rows (S_Rel 1,570, S_Adult 2,922). The distinct pairs among them and
# how many conflict were counted once by hand (csv + collections.Counter) when writing this test.
DUPLICATE_PAIRS_AND_CONFLICTS = {"S_Rel": (1489, 277), "S_Adult": (2918, 149)}


def _import_crowd(folder, expected, slug):
    # A project starts with one class; the others come from --create-classes.
    project = create_project(slug=slug, name=folder, data_kind="text", classes=["1"])
    args = [str(CROWD_DIR / folder / a) if a.endswith((".csv", ".txt")) else a for a in expected["args"]]
    if "truth_columns" in expected:
        args += ["--truth-columns", expected["truth_columns"]]
    call_command("import_annotations", slug, *args, "--create-classes", stdout=io.StringIO())
    return project, ImportBatch.objects.get(project=project)


@pytest.mark.crowd
@pytest.mark.parametrize("folder", list(CROWD))
def test_every_crowd_dataset_imports_with_the_counts_of_its_readme(folder):
    expected = CROWD[folder]

    project, batch = _import_crowd(folder, expected, slug=folder.lower().replace("_", "-"))

    s = batch.summary
    assert (batch.rejected_count, batch.errors) == (0, [])
    assert (s["items"], s["items_created"]) == (expected["items"], expected["items"])
    assert (s["labelers"], s["labelers_created"]) == (expected["workers"], expected["workers"])
    assert s["labels"] == batch.created_count == expected["labels"]
    assert len(s["classes"]) == expected["classes"]
    assert s["duplicate_rows"] == expected.get("duplicate_rows", 0)
    pairs_and_conflicts = (s["duplicate_pairs"], s["conflicting_duplicate_pairs"])
    assert pairs_and_conflicts == DUPLICATE_PAIRS_AND_CONFLICTS.get(folder, (0, 0))
    assert (s["gold_loaded"], s["gold_without_labels"]) == (expected["gold"], expected.get("gold_without_labels", 0))

    assert Item.objects.filter(project=project).count() == expected["items"]
    assert Membership.objects.filter(project=project, role="labeler").count() == expected["workers"]
    annotations = Annotation.objects.filter(item__project=project)
    assert annotations.count() == expected["labels"]
    # One current annotation per (item, worker) pair: the repeated rows are history.
    assert annotations.current().count() == expected["labels"] - expected.get("duplicate_rows", 0)
    assert GoldLabel.objects.filter(item__project=project).count() == expected["gold"]


@pytest.mark.crowd
def test_crowd_reimport_adds_nothing_and_cr_only_truth_is_read():
    # quali_truth.csv has old-Mac CR-only line endings; the qualification test has 20 items.
    project = create_project(slug="quali", name="Quali", data_kind="text", classes=["0", "1"])
    folder = CROWD_DIR / "D_PosSent"
    args = ["quali", str(folder / "quali.csv"), "--columns", "id,worker,answer", "--truth"]
    args += [str(folder / "quali_truth.csv"), "--truth-columns", "q,truth"]
    call_command("import_annotations", *args, stdout=io.StringIO())
    before = written_rows(project)

    call_command("import_annotations", *args, stdout=io.StringIO())

    assert written_rows(project) == {**before, "batches": 2}
    assert before["items"] == before["gold"] == 20
    assert ImportBatch.objects.filter(project=project).first().created_count == 0
