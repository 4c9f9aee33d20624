"""The one place benchmarks write their figures: a section of benchmarks/RESULTS.md each."""

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading, text):
    """Replace the section that starts with `heading` (a '## ...' line), or append it; the other
    sections are left as they are. The file is re-read just before writing."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if not text.startswith(heading):
        text = f"{heading}\n\n{text}"
    start = current.find(heading)
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(heading))
        updated = current[:start] + text.rstrip("\n") + ("\n" if end == -1 else "\n\n" + current[end + 1 :])
    RESULTS.write_text(updated.rstrip("\n") + "\n")
