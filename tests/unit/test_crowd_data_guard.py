"""The one guard every crowd-data test goes through: skip on a bare clone, fail in CI."""

import pytest
from _pytest.outcomes import Failed, Skipped

import tests.conftest as root


@pytest.fixture
def no_crowd_data(monkeypatch, tmp_path):
    monkeypatch.setattr(root, "CROWD_DIR", tmp_path / "shared" / "datasets" / "crowd")


def test_absent_crowd_data_skips_with_a_message_outside_ci(no_crowd_data, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(Skipped, match=r"crowd datasets not found in .*shared/datasets/crowd \(missing: D_Product"):
        root.require_crowd_data()


def test_absent_crowd_data_fails_in_ci(no_crowd_data, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(Failed, match="crowd datasets not found"):
        root.require_crowd_data()


def test_one_missing_dataset_is_named(monkeypatch, tmp_path):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(root, "CROWD_DIR", tmp_path)
    for name in root.CROWD_DATASETS:
        if name != "RTE":
            (tmp_path / name).mkdir()
    with pytest.raises(Skipped, match=r"\(missing: RTE\)"):
        root.require_crowd_data()
    (tmp_path / "RTE").mkdir()
    root.require_crowd_data()  # all there: the test runs
