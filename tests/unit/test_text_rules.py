"""The text rule (annotation/text_rules.py) and the delimited-file reader's row errors: pure."""

import pytest

from annotation.crowd_parse import ParseError, decode_text, read_records
from annotation.text_rules import (
    MAX_INT32,
    control_character_problem,
    int32_problem,
    json_text_problems,
    printable,
    short_label_problem,
)


@pytest.mark.parametrize("char", [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"])
def test_every_c0_control_but_tab_and_line_breaks_is_refused(char):
    problem = control_character_problem(f"ab{char}")
    assert problem.startswith(f"holds the control character U+{ord(char):04X}") and "at position 3" in problem


@pytest.mark.parametrize("value", ["", "plain", "tab\tnew\nline\r\n", "العربية\u200f", "emoji 👩\u200d💻", "\x7f\x85"])
def test_ordinary_text_passes(value):
    assert control_character_problem(value) is None


def test_a_lone_surrogate_is_refused():
    assert control_character_problem("x\udc00") == (
        "holds the unpaired surrogate U+DC00 at position 2; "
        "control characters other than tab and line breaks are not accepted"
    )


@pytest.mark.parametrize("char", ["\u202e", "\u202d", "\u2066", "\u200b", "\u200d", "\u200f", "\ufeff", "\u061c"])
def test_short_labels_refuse_direction_and_zero_width_characters(char):
    assert "direction overrides and zero-width characters" in short_label_problem(f"cat{char}")
    assert control_character_problem(f"cat{char}") is None  # free text keeps them


def test_short_labels_also_refuse_controls_and_accept_plain_names():
    assert "U+0000 (NUL)" in short_label_problem("a\x00")
    assert short_label_problem("Bürgersteig 7") is None


def test_json_problems_name_the_path_of_each_bad_value_and_key():
    data = {"note": "ok", "classes": ["a", "b\x00"], "meta": {"k": "\x01", "b\x02d": 1}, "n": 5}
    assert [field for field, _ in json_text_problems(data)] == ["classes[1]", "meta.k", "meta"]
    assert next(json_text_problems(["\x00"]))[0] == "[0]"
    assert next(json_text_problems("\x00", top="row"))[0] == "row"
    assert list(json_text_problems({"a": [1, 2.5, None, True]})) == []


def test_printable_escapes_only_refused_characters():
    assert printable("a\x00b\tc") == "a\\x00b\tc"
    assert printable("plain") == "plain"


def test_int32_bounds():
    assert int32_problem(MAX_INT32) is None and int32_problem(0) is None
    assert "2,147,483,647" in int32_problem(MAX_INT32 + 1, "seed") and "seed" in int32_problem(-1, "seed")
    assert int32_problem(True) == "value must be a whole number"


def test_a_nul_on_the_first_line_means_a_binary_file_later_ones_are_row_errors():
    with pytest.raises(ParseError, match="holds NUL characters"):
        decode_text(b"\x00i\x00t\x00e\x00m\n")
    text = decode_text(b"item,worker,label\na,w1,x\nb\x00,w1,y\nc,w2,z\n")
    records, errors = read_records(
        text, roles=("item", "labeler", "label"), columns=None, has_header=True, delimiter=","
    )
    assert [r.line for r in records] == [2, 4]
    assert errors[0]["row"] == 3 and errors[0]["field"] == "item" and "U+0000 (NUL)" in errors[0]["message"]


def test_a_cell_over_the_csv_limit_is_a_row_error_and_reading_goes_on():
    text = "item,worker,label\na,w1,x\nb,w1," + "y" * 131_073 + "\nc,w2,z\n"
    records, errors = read_records(
        text, roles=("item", "labeler", "label"), columns=None, has_header=True, delimiter=","
    )
    assert [r.values for r in records] == [("a", "w1", "x"), ("c", "w2", "z")]
    assert errors == [
        {"row": 3, "field": "row", "message": "has a cell longer than 131,072 characters, the most a cell may hold"}
    ]
