import json

import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from annotation.errors import ImportRejected
from annotation.models import GoldLabel, ImportBatch, Item
from annotation.services.item_import import import_items
from annotation.services.projects import create_project

from .imaging import png_bytes, zip_bytes

pytestmark = pytest.mark.django_db


def errors_by_row(batch):
    return {e["row"]: e for e in batch.errors}


@pytest.fixture
def text_project(db):
    return create_project(slug="reviews", name="Reviews", data_kind="text", classes=["pos", "neg"])


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def test_good_images_land_with_metadata_gold_thumbnails_and_splits(project, tmp_path):
    manifest = "filename,noise,gold\na.png,car,crow\nb.jpg,street,\n"
    archive = zip_bytes({"a.png": png_bytes(10), "b.jpg": png_bytes(200, fmt="JPEG"), "manifest.csv": manifest})
    batch = import_items(project, write(tmp_path, "birds.zip", archive))

    assert (batch.created_count, batch.skipped_count, batch.rejected_count) == (2, 0, 0)
    a = Item.objects.get(project=project, external_id="a.png")
    assert a.metadata == {"noise": "car"} and (a.width, a.height) == (16, 16)
    assert [c.name for c in a.gold.labels.all()] == ["crow"]
    assert not GoldLabel.objects.filter(item__external_id="b.jpg").exists()
    assert default_storage.exists(a.image.name) and default_storage.exists(a.thumbnail.name)
    assert a.split in {"train", "dev", "test"} and a.import_batch == batch and a.source_name == "birds.zip"
    assert len(a.sha256) == 64


def test_every_bad_image_is_rejected_with_its_reason_and_the_good_ones_land(project, tmp_path, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_IMAGE_PIXELS": 100 * 100, "MAX_IMAGE_BYTES": 50_000}
    good = png_bytes(1)
    entries = {
        "good.png": good,
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20,
        "truncated.png": png_bytes(5, size=(60, 60))[:80],
        "notes.jpg": b"this is a text file, not a JPEG",
        "bomb.png": png_bytes(0, size=(101, 100)),
        "huge.png": bytes(60_000),
        "empty.png": b"",
        "jpeg-named.png": png_bytes(3, fmt="JPEG"),
        "readme.txt": b"hello",
        "/abs.png": good,
        "../escape.png": good,
        "nested/../../escape2.png": good,
        "gold-unknown.png": png_bytes(2),
        "manifest.csv": "filename,gold\ngold-unknown.png,penguin\nmissing.png,crow\n",
    }
    batch = import_items(project, write(tmp_path, "mixed.zip", zip_bytes(entries)))
    errors = errors_by_row(batch)

    assert list(Item.objects.filter(project=project).values_list("external_id", flat=True)) == ["good.png"]
    assert batch.created_count == 1 and batch.rejected_count == len(errors) == 13
    assert "corrupt or truncated image" in errors["corrupt.png"]["message"]
    assert "corrupt or truncated image" in errors["truncated.png"]["message"]
    assert "not an image Pillow can read" in errors["notes.jpg"]["message"]
    assert errors["bomb.png"]["message"] == "image is 101x100 pixels; the limit is 10,000 pixels"
    assert errors["huge.png"]["message"] == "file is 60,000 bytes; the limit is 50,000"
    assert errors["empty.png"]["message"] == "file is empty"
    assert errors["jpeg-named.png"]["message"] == "content is JPEG, not PNG as its name says"
    assert "only .jpeg, .jpg, .png are imported" in errors["readme.txt"]["message"]
    assert errors["/abs.png"]["message"] == "absolute paths are not allowed in a zip"
    assert errors["../escape.png"]["message"] == "'..' is not allowed in a zip entry's path"
    assert errors["nested/../../escape2.png"]["message"] == "'..' is not allowed in a zip entry's path"
    assert errors["gold-unknown.png"]["field"] == "gold"
    assert "unknown label 'penguin'" in errors["gold-unknown.png"]["message"]
    assert errors["manifest.csv:3"]["message"] == "'missing.png' is not in the import"


def test_zip_member_that_lies_about_its_size_is_never_read_past_that_size(project, tmp_path, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_IMAGE_BYTES": 1000}
    path = write(tmp_path, "liar.zip", zip_bytes({"big.png": bytes(5000)}))
    # Rewrite the central directory's size field to claim a tiny file (a classic zip-bomb trick).
    data = bytearray(path.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    batch = import_items(project, path)
    assert batch.created_count == 0
    assert batch.errors[0]["row"] == "big.png"
    assert batch.errors[0]["message"] == "cannot be read from the archive: Bad CRC-32 for file 'big.png'"


def test_reimport_adds_nothing_and_duplicate_content_is_skipped(project, tmp_path):
    archive = write(
        tmp_path, "a.zip", zip_bytes({"a.png": png_bytes(1), "b.png": png_bytes(2), "copy.png": png_bytes(1)})
    )
    first = import_items(project, archive)
    assert (first.created_count, first.skipped_count) == (2, 1)
    assert first.summary["skipped_examples"] == [{"row": "copy.png", "reason": "same content as item 'a.png'"}]

    again = import_items(project, archive)
    assert (again.created_count, again.skipped_count, again.rejected_count) == (0, 3, 0)
    assert Item.objects.filter(project=project).count() == 2


def test_folder_import_with_manifest(project, tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.png").write_bytes(png_bytes(1))
    (folder / "sub" / "two.jpeg").write_bytes(png_bytes(2, fmt="JPEG"))
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / "manifest.csv").write_text("filename,device\nsub/two.jpeg,phone-x\n")
    batch = import_items(project, folder)
    assert batch.created_count == 2 and batch.rejected_count == 0
    assert Item.objects.get(external_id="sub/two.jpeg").metadata == {"device": "phone-x"}


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("empty.zip", b"", "empty.zip is empty"),
        ("broken.zip", b"PK\x03\x04 not really a zip", "broken.zip is not a readable zip file"),
        ("photo.png", png_bytes(1), "an image project imports a folder or a .zip of PNG/JPEG"),
        (
            "m.zip",
            zip_bytes({"a.png": png_bytes(1), "manifest.csv": "file,gold\na.png,crow\n"}),
            "manifest.csv lacks the required column(s) filename; found file, gold",
        ),
    ],
)
def test_whole_file_problems_write_nothing(project, tmp_path, name, data, message):
    with pytest.raises(ImportRejected) as error:
        import_items(project, write(tmp_path, name, data))
    assert message in error.value.message
    assert not Item.objects.exists() and not ImportBatch.objects.exists()


def test_file_over_the_size_limit_is_refused(project, tmp_path, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_UPLOAD_BYTES": 100}
    with pytest.raises(ImportRejected, match="the limit is 100"):
        import_items(project, write(tmp_path, "big.zip", zip_bytes({"a.png": png_bytes(1)})))
    assert not ImportBatch.objects.exists()


def test_text_csv_rows_checked_one_by_one(text_project, tmp_path, settings):
    settings.CONCORD_IMPORT = {**settings.CONCORD_IMPORT, "MAX_TEXT_CHARS": 50}
    csv_text = (
        "external_id,text,gold,lang\n"
        "r1,Great product,pos,en\n"
        ",no id,pos,en\n"
        "r3,,neg,en\n"
        "r4,Terrible,meh,en\n"
        f"r5,{'x' * 51},pos,en\n"
        "r1,Great product again,pos,en\n"
        "r7,Fine,,de,extra-cell\n"
        "r8,Great product,,en\n"
        'r9,"Multi\nline, quoted",neg,fr\n'
    )
    batch = import_items(text_project, write(tmp_path, "reviews.csv", csv_text))
    errors = errors_by_row(batch)
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["r1", "r9"]
    assert errors[3]["message"] == "external_id is empty"
    assert errors[4] == {"row": 4, "field": "text", "message": "text is empty"}
    assert errors[5]["field"] == "gold" and "unknown label 'meh'" in errors[5]["message"]
    assert errors[6]["message"] == "text has 51 characters; the limit is 50"
    assert errors[8]["message"] == "the row has more cells than the header"
    assert batch.skipped_count == 2  # r1 repeated, and r8 repeats r1's text
    assert Item.objects.get(external_id="r9").text == "Multi\nline, quoted"
    assert Item.objects.get(external_id="r9").metadata == {"lang": "fr"}
    assert [c.name for c in Item.objects.get(external_id="r1").gold.labels.all()] == ["pos"]


def test_text_jsonl(text_project, tmp_path):
    lines = [
        json.dumps({"external_id": "a", "text": "good", "gold": "pos", "device": "phone"}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"external_id": "b", "text": "ok", "meta": {"nested": 1}}),
        "",
        json.dumps({"external_id": "c", "text": "fine", "score": 3}),
    ]
    batch = import_items(text_project, write(tmp_path, "t.jsonl", "\n".join(lines)))
    errors = errors_by_row(batch)
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["a", "c"]
    assert errors[2]["message"].startswith("not valid JSON")
    assert errors[3]["message"] == "each line must be a JSON object"
    assert errors[4] == {"row": 4, "field": "meta", "message": "metadata values must be text, numbers or booleans"}
    assert Item.objects.get(external_id="c").metadata == {"score": 3}


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("t.csv", "id,body\n1,x\n", "t.csv lacks the required column(s) external_id, text; found id, body"),
        ("t.csv", b"external_id,text\n1,caf\xe9\n", "t.csv is not UTF-8 text"),
        ("t.csv", "\n\n", "t.csv is empty"),
        ("t.txt", "hello", "a text project imports a .csv or .jsonl file"),
    ],
)
def test_text_whole_file_problems(text_project, tmp_path, name, data, message):
    with pytest.raises(ImportRejected) as error:
        import_items(text_project, write(tmp_path, name, data))
    assert message in error.value.message
    assert not Item.objects.exists()


def test_import_items_command_reports_counts_and_errors(project, tmp_path, capsys):
    archive = write(tmp_path, "a.zip", zip_bytes({"a.png": png_bytes(1), "bad.png": b"nope"}))
    call_command("import_items", "birds", str(archive))
    out, err = capsys.readouterr()
    assert "a.zip: 1 created, 0 skipped as duplicates, 1 rejected" in out
    assert "rejected bad.png [file]: not an image Pillow can read" in err
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        call_command("import_items", "nope", str(archive))
    with pytest.raises(CommandError, match="is empty"):
        call_command("import_items", "birds", str(write(tmp_path, "e.zip", b"")))
