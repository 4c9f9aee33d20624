"""Bad input gets a 4xx (or a row error) naming the field or row, never a 500, and leaves nothing
partial behind: each case below once answered 500 (issue 16). Rows and files are counted before
and after.

The text rule lives in config/text_input.py (a middleware) and annotation/text_rules.py (reused
by the importers); the `text_rule` fixture adds the middleware as settings.py does.
"""

import json
import zipfile

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import OperationalError
from django.urls import reverse

from annotation.errors import DomainError, ImportRejected
from annotation.models import (
    Annotation,
    Guideline,
    GuidelineNote,
    ImportBatch,
    Item,
    LabelClass,
    Membership,
    Project,
    Resolution,
)
from annotation.services import item_import
from annotation.services.annotation_import import import_annotations
from annotation.services.item_import import import_items
from annotation.services.projects import create_project
from annotation.text_rules import MAX_INT32
from training.models import ModelVersion

from .imaging import png_bytes, zip_bytes

pytestmark = pytest.mark.django_db
MIDDLEWARE = "config.text_input.TextInputMiddleware"
NUL_MESSAGE = "holds the control character U+0000 (NUL)"


@pytest.fixture
def text_rule(settings):
    if MIDDLEWARE not in settings.MIDDLEWARE:
        settings.MIDDLEWARE = [settings.MIDDLEWARE[0], MIDDLEWARE, *settings.MIDDLEWARE[1:]]


@pytest.fixture
def text_project(db):
    return create_project(slug="notes", name="Notes", data_kind="text", classes=["pos", "neg"])


@pytest.fixture
def item(project):
    return Item.objects.create(project=project, external_id="i1", split="train")


def media_files(settings):
    root = settings.MEDIA_ROOT
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rows_of(project):
    return {
        "batches": ImportBatch.objects.filter(project=project).count(),
        "items": Item.objects.filter(project=project).count(),
        "annotations": Annotation.objects.filter(item__project=project).count(),
        "classes": LabelClass.objects.filter(project=project).count(),
    }


def errors_by_row(batch):
    return {e["row"]: e for e in batch.errors}


def upload(client, project, name, data):
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = reverse("api:import-list", args=[project.pk])
    return client.post(url, {"file": SimpleUploadedFile(name, data)}, format="multipart")


# --- the text rule in requests ----------------------------------------------------------------


def test_a_nul_in_the_labeler_filter_is_a_400_naming_it(text_rule, api_as, mle, project):
    response = api_as(mle).get(reverse("api:annotation-list", args=[project.pk]), {"labeler": "lab\x00"})
    assert response.status_code == 400
    assert NUL_MESSAGE in response.json()["labeler"][0] and "position 4" in response.json()["labeler"][0]


@pytest.mark.parametrize(
    ("url_name", "body", "field", "model"),
    [
        ("api:resolution-create", {"labels": ["crow"], "note": "see\x00this"}, "note", Resolution),
        ("api:guideline-note", {"text": "rule\x00"}, "text", GuidelineNote),
        ("api:guideline-publish", {"text": "# Rules\x00"}, "text", Guideline),
        ("api:class-list", {"name": "heron\x00"}, "name", LabelClass),
        ("api:resolution-create", {"labels": ["crow", "do\x00ve"]}, "labels[1]", Resolution),
    ],
)
def test_a_nul_in_a_json_field_is_a_400_naming_it_and_writes_nothing(
    text_rule, api_as, sme, project, item, url_name, body, field, model
):
    before = model.objects.count()
    response = api_as(sme).post(reverse(url_name, args=[project.pk]), {"item": item.pk, **body}, format="json")
    assert response.status_code == 400
    assert NUL_MESSAGE in response.json()[field][0]
    assert model.objects.count() == before


def test_other_control_characters_and_keys_are_refused_but_tabs_and_line_breaks_pass(
    text_rule, api_as, sme, project, item
):
    client = api_as(sme)
    url = reverse("api:guideline-note", args=[project.pk])
    bell = client.post(url, {"item": item.pk, "text": "ding\x07"}, format="json")
    assert bell.status_code == 400 and "U+0007" in bell.json()["text"][0]
    key = client.post(url, {"item": item.pk, "te\x00xt": "a"}, format="json")
    assert key.status_code == 400 and "a key holds the control character U+0000" in key.json()["body"][0]
    surrogate = client.post(url, b'{"text": "half \\ud800"}', content_type="application/json")
    assert surrogate.status_code == 400 and "unpaired surrogate U+D800" in surrogate.json()["text"][0]
    fine = client.post(url, {"item": item.pk, "text": "two\tcolumns\r\nand lines"}, format="json")
    assert fine.status_code == 201
    assert GuidelineNote.objects.get().text == "two\tcolumns\r\nand lines"


def test_a_page_form_with_a_nul_gets_a_readable_plain_400(text_rule, client, mle):
    response = client.post(reverse("login"), {"username": "mle\x00", "password": "x"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert text.startswith("Bad request: the field 'username' holds the control character U+0000 (NUL)")


# --- integer bounds ---------------------------------------------------------------------------


def project_body(seed, slug):
    return {"name": "Seeded", "slug": slug, "data_kind": "text", "classes": ["a", "b"], "seed": seed}


def test_a_project_seed_beyond_the_column_is_a_400_naming_seed(api_as, mle):
    client = api_as(mle)
    too_big = client.post(reverse("api:project-list"), project_body(MAX_INT32 + 1, "big"), format="json")
    assert too_big.status_code == 400 and "2147483647" in str(too_big.json()["seed"])
    assert not Project.objects.filter(slug="big").exists()
    largest = client.post(reverse("api:project-list"), project_body(MAX_INT32, "largest"), format="json")
    assert largest.status_code == 201 and Project.objects.get(slug="largest").seed == MAX_INT32


def test_the_service_and_the_command_refuse_a_seed_beyond_the_column(db):
    with pytest.raises(DomainError) as refused:
        create_project(slug="s", name="S", data_kind="text", classes=["a"], seed=2**31)
    assert refused.value.field == "seed" and "2,147,483,647" in refused.value.message
    with pytest.raises(CommandError, match=r"seed: seed must lie between 0 and 2,147,483,647"):
        call_command("create_project", "s", "--name=S", "--data-kind=text", "--classes=a", f"--seed={2**31}")
    assert not Project.objects.filter(slug="s").exists()


def test_a_random_state_beyond_the_column_is_a_400_and_no_version(api_as, mle, project):
    url = reverse("training_api:project-models", args=[project.pk])
    response = api_as(mle).post(url, {"trainer": "sklearn_logreg", "random_state": 2**31}, format="json")
    assert response.status_code == 400 and "2147483647" in str(response.json()["random_state"])
    assert not ModelVersion.objects.exists()
    with pytest.raises(CommandError, match=r"--seed must lie between 0 and 2,147,483,647"):
        call_command("train", project.slug, "--trainer=sklearn_logreg", f"--seed={2**32}")
    assert not ModelVersion.objects.exists()


# --- short labels -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "character"),
    [("crow\u202e", "U+202E (RIGHT-TO-LEFT OVERRIDE)"), ("do\u200bve", "U+200B (ZERO WIDTH SPACE)")],
)
def test_class_names_refuse_direction_overrides_and_zero_width_characters(api_as, mle, name, character):
    body = {"name": "Spoof", "slug": "spoof", "data_kind": "text", "classes": ["crow", name]}
    response = api_as(mle).post(reverse("api:project-list"), body, format="json")
    assert response.status_code == 400
    assert f"holds the invisible character {character} at position" in response.json()["classes"][0]
    assert not Project.objects.filter(slug="spoof").exists()


def test_an_imported_class_name_with_a_zero_width_character_is_a_row_error(project, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("item,worker,answer\na,w1,crow\nb,w1,ow\u200bl\nc,w2,heron\n")
    batch = import_annotations(project, path, create_classes=True)
    assert batch.created_count == 2
    assert "ZERO WIDTH SPACE" in errors_by_row(batch)[3]["message"] and errors_by_row(batch)[3]["field"] == "label"
    assert set(LabelClass.objects.filter(project=project).values_list("name", flat=True)) == {
        "crow", "dove", "owl", "unclear", "heron",
    }  # fmt: skip


# --- the member API ---------------------------------------------------------------------------


def test_adding_a_member_of_another_project_answers_as_for_a_name_that_does_not_exist(api_as, mle, project, outsider):
    client = api_as(mle)
    url = reverse("api:member-list", args=[project.pk])
    ghost = client.post(url, {"username": "ghost", "role": "labeler"}, format="json")
    hidden = client.post(url, {"username": "outsider", "role": "labeler"}, format="json")
    assert ghost.status_code == hidden.status_code == 400
    assert ghost.json()["password"][0].replace("ghost", "NAME") == hidden.json()["password"][0].replace(
        "outsider", "NAME"
    )
    taken = client.post(url, {"username": "outsider", "role": "labeler", "password": "a-long-Passphrase-42"})
    assert taken.status_code == 400 and "cannot be used for a new account" in taken.json()["username"][0]
    assert not Membership.objects.filter(project=project, user=outsider).exists()


# --- text imports -----------------------------------------------------------------------------


def test_a_nul_in_a_csv_row_is_a_row_error_and_the_good_rows_land(api_as, mle, text_project):
    Membership.objects.create(user=mle, project=text_project, role="mle")
    data = "external_id,text,noise\na,good one,car\nb,bad\x00text,car\nc,fine,str\x00eet\nd,also good,\n"
    response = upload(api_as(mle), text_project, "rows.csv", data.encode())
    assert response.status_code == 201
    body = response.json()
    assert (body["created_count"], body["rejected_count"]) == (2, 2)
    errors = {e["row"]: e for e in body["errors"]}
    assert errors[3]["field"] == "text" and NUL_MESSAGE in errors[3]["message"]
    assert errors[4]["field"] == "noise" and NUL_MESSAGE in errors[4]["message"]
    assert sorted(Item.objects.filter(project=text_project).values_list("external_id", flat=True)) == ["a", "d"]


def test_a_csv_cell_over_the_csv_field_limit_is_a_row_error(text_project, tmp_path):
    long_cell = "x" * 131_073
    path = tmp_path / "long.csv"
    path.write_text(f"external_id,text\na,short\nb,{long_cell}\nc,after it\n")
    batch = import_items(text_project, path)
    assert batch.created_count == 2
    assert errors_by_row(batch)[3] == {
        "row": 3,
        "field": "row",
        "message": "a cell is longer than 131,072 characters, the most a CSV cell may hold",
    }
    assert sorted(Item.objects.filter(project=text_project).values_list("external_id", flat=True)) == ["a", "c"]


def test_a_nul_in_a_jsonl_value_or_key_is_a_row_error(text_project, tmp_path):
    lines = [
        {"external_id": "a", "text": "good"},
        {"external_id": "b", "text": "bad \u0000"},
        {"external_id": "c", "text": "good too", "meta": {"deep": "x\u0000"}},
        {"external_id": "d", "text": "key", "no\u0000ise": "car"},
        {"external_id": "e", "text": "line\u2028separator inside"},
    ]
    path = tmp_path / "rows.jsonl"
    # The last line raw (U+2028 unescaped); the others escaped, as JSON writers do with NUL.
    text = "\n".join(json.dumps(line) for line in lines[:-1]) + "\n" + json.dumps(lines[-1], ensure_ascii=False)
    assert "\u2028" in text
    path.write_text(text + "\n")
    batch = import_items(text_project, path)
    errors = errors_by_row(batch)
    assert batch.created_count == 2 and batch.rejected_count == 3
    assert errors[2]["field"] == "text" and NUL_MESSAGE in errors[2]["message"]
    assert errors[3]["field"] == "meta.deep"
    assert errors[4]["field"] == "row" and errors[4]["message"].startswith("a key holds the control character")
    assert Item.objects.get(project=text_project, external_id="e").text == "line\u2028separator inside"


def test_an_annotation_file_with_a_nul_or_a_long_cell_in_a_row_keeps_its_good_rows(project, tmp_path):
    before = rows_of(project)
    path = tmp_path / "labels.csv"
    path.write_text(f"item,worker,answer\na,w1,crow\nb\x00,w1,dove\nc,w2,{'y' * 131_073}\nd,w2,owl\n")
    batch = import_annotations(project, path)
    errors = errors_by_row(batch)
    assert batch.created_count == 2 and batch.rejected_count == 2
    assert errors[3]["field"] == "item" and NUL_MESSAGE in errors[3]["message"]
    assert errors[4]["field"] == "row" and "longer than 131,072 characters" in errors[4]["message"]
    assert rows_of(project)["items"] == before["items"] + 2


# --- image imports ----------------------------------------------------------------------------


def test_a_nul_in_a_manifest_cell_refuses_that_image_only(api_as, mle, project, settings):
    manifest = "filename,noise,gold\na.png,car,crow\nb.png,str\x00eet,dove\n"
    archive = zip_bytes({"a.png": png_bytes(1), "b.png": png_bytes(2), "manifest.csv": manifest})
    response = upload(api_as(mle), project, "birds.zip", archive)
    assert response.status_code == 201
    errors = {e["row"]: e for e in response.json()["errors"]}
    assert list(errors) == ["b.png"] and errors["b.png"]["field"] == "noise"
    assert NUL_MESSAGE in errors["b.png"]["message"] and "(manifest.csv line 3)" in errors["b.png"]["message"]
    assert list(Item.objects.filter(project=project).values_list("external_id", flat=True)) == ["a.png"]
    # Only the landed image and its thumbnail are on disk.
    assert len(media_files(settings)) == 2


def compressible_zip(members, size):
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for n in range(members):
            archive.writestr(f"{n}.png", bytes(size))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (
            {"MAX_ZIP_TOTAL_BYTES": 10 * 2**20},
            "bomb.zip unpacks to 15,728,640 bytes; the limit is 10,485,760: split it into smaller zips",
        ),
        ({"MAX_ZIP_MEMBERS": 14}, "bomb.zip holds 15 files; the limit is 14"),
    ],
)
def test_a_zip_over_the_caps_is_refused_before_anything_is_unpacked(
    api_as, mle, project, settings, monkeypatch, limits, message
):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, **limits}
    archive = compressible_zip(15, 2**20)  # 15 MiB of zeros in ~15 kB
    assert len(archive) < 100_000

    def no_unpacking(*args, **kwargs):
        raise AssertionError("a member was opened before the caps were checked")

    monkeypatch.setattr(zipfile.ZipFile, "open", no_unpacking)
    before = rows_of(project)
    response = upload(api_as(mle), project, "bomb.zip", archive)
    assert response.status_code == 400 and response.json()["file"] == [message]
    assert rows_of(project) == before and media_files(settings) == []


def test_the_zip_caps_have_defaults_when_settings_do_not_name_them(project, settings, tmp_path, monkeypatch):
    settings.CONCORD_IMPORT = {
        k: v for k, v in settings.CONCORD_IMPORT.items() if k not in ("MAX_ZIP_TOTAL_BYTES", "MAX_ZIP_MEMBERS")
    }
    monkeypatch.setattr(item_import, "DEFAULT_MAX_ZIP_MEMBERS", 3)
    path = tmp_path / "many.zip"
    path.write_bytes(compressible_zip(4, 0))
    with pytest.raises(ImportRejected, match="holds 4 files; the limit is 3"):
        import_items(project, path)


def test_a_failed_image_import_leaves_no_files_and_no_rows(project, settings, tmp_path, monkeypatch):
    import_items(project, _zip_at(tmp_path / "first.zip", {"old.png": png_bytes(9)}))
    files_before, rows_before = media_files(settings), rows_of(project)
    assert len(files_before) == 2

    def connection_lost(project):
        raise OperationalError("server closed the connection unexpectedly")

    # The last step inside the batch's transaction fails, after every file was written.
    monkeypatch.setattr(item_import, "refresh_queue_state", connection_lost)
    archive = {"new1.png": png_bytes(1), "new2.jpg": png_bytes(2, fmt="JPEG"), "again.png": png_bytes(9)}
    with pytest.raises(OperationalError):
        import_items(project, _zip_at(tmp_path / "second.zip", archive))
    assert media_files(settings) == files_before  # the earlier import's files are kept
    assert rows_of(project) == rows_before


def _zip_at(path, entries):
    path.write_bytes(zip_bytes(entries))
    return path


def test_a_zip_member_name_with_a_control_character_is_a_row_error(project, tmp_path):
    batch = import_items(project, _zip_at(tmp_path / "names.zip", {"ok.png": png_bytes(1), "b\x07d.png": png_bytes(2)}))
    errors = errors_by_row(batch)
    assert batch.created_count == 1
    assert errors["b\\x07d.png"]["message"].startswith("the file name holds the control character U+0007")


def test_users_are_not_created_by_a_refused_member_request(text_rule, api_as, mle, project):
    url = reverse("api:member-list", args=[project.pk])
    response = api_as(mle).post(url, {"username": "new\x00", "role": "labeler", "password": "a-long-Passphrase-42"})
    assert response.status_code == 400 and NUL_MESSAGE in response.json()["username"][0]
    assert not get_user_model().objects.filter(username__startswith="new").exists()
