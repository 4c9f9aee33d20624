"""No module outside migrations/ and tests/ grows past 600 lines: past that, a module holds several
concerns, and the next change lands in the wrong one (issue 13). Split by what changes together."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_LINES = 600
SKIP_DIRS = {".venv", "migrations", "tests", "node_modules", "var", "staticfiles", ".git"}


def long_modules(root: Path, max_lines: int = MAX_LINES) -> dict[str, int]:
    """{path relative to root: lines} of the .py files over ``max_lines``."""
    found = {}
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if SKIP_DIRS.intersection(relative.parts[:-1]):
            continue
        lines = len(path.read_text().splitlines())
        if lines > max_lines:
            found[relative.as_posix()] = lines
    return found


def test_no_module_is_longer_than_600_lines():
    assert long_modules(ROOT) == {}, f"over {MAX_LINES} lines: split by concern (issue 13)"


def test_the_count_sees_a_long_module_and_skips_migrations(tmp_path):
    (tmp_path / "app" / "migrations").mkdir(parents=True)
    (tmp_path / "app" / "long.py").write_text("x = 1\n" * 601)
    (tmp_path / "app" / "short.py").write_text("x = 1\n" * 600)
    (tmp_path / "app" / "migrations" / "0001_initial.py").write_text("x = 1\n" * 900)
    assert long_modules(tmp_path) == {"app/long.py": 601}
