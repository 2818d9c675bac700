"""Datasets: loading (each accepted and rejected input), column checks, fingerprint, diff, prepare."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmops_lab.evaluation.datasets import (ACCEPTED, DataDiff, check_columns, diff, fingerprint, load_rows, prepare,
                             prepare_report)
from llmops_lab.exceptions import ConfigError

ROWS = [{"id": 1, "text": "Hello", "expected": "hi"}, {"id": 2, "text": "NA", "expected": "None"}]


def one_line_error(match: str, func, *args, **kwargs) -> str:
    with pytest.raises(ConfigError, match=match) as err:
        func(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- load_rows ------------------------------------------------------------------------------------

def test_dataframe_is_returned_as_is():
    df = pd.DataFrame(ROWS)
    assert load_rows(df) is df


def test_list_of_dicts():
    df = load_rows(ROWS + [{"id": 3, "text": "x", "extra": [1, 2]}])
    assert df.columns.tolist() == ["id", "text", "expected", "extra"]
    assert df["text"].tolist() == ["Hello", "NA", "x"] and df["extra"].iloc[2] == [1, 2]


def test_csv(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes("\ufeffid,text,expected\n1,Hello,hi\n2,NA,None\n3,,café\n".encode())  # with a BOM
    df = load_rows(path)
    assert df.columns.tolist() == ["id", "text", "expected"]  # BOM not in the first name
    assert df["text"].iloc[1] == "NA" and df["expected"].iloc[1] == "None"  # not turned into missing
    assert pd.isna(df["text"].iloc[2]) and df["expected"].iloc[2] == "café"
    assert load_rows(str(path)).equals(df)  # a str path too


def test_jsonl_and_json(tmp_path):
    lines = tmp_path / "rows.jsonl"
    lines.write_text("\ufeff" + "\n".join(json.dumps(r) for r in ROWS) + "\n\n", encoding="utf-8")  # BOM, blanks
    records = tmp_path / "rows.json"
    records.write_text(json.dumps(ROWS), encoding="utf-8")
    as_lines = tmp_path / "lines.json"  # JSON lines saved as .json
    as_lines.write_text(lines.read_text(), encoding="utf-8")
    expected = pd.DataFrame(ROWS)
    for path in (lines, records, as_lines):
        df = load_rows(path)
        pd.testing.assert_frame_equal(df, expected)
    sep = tmp_path / "sep.jsonl"  # U+2028 inside a string is not a line break
    sep.write_text(json.dumps({"text": "a\u2028b"}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_rows(sep)["text"].tolist() == ["a\u2028b"]


@pytest.mark.parametrize("data,match", [
    ({"text": ["a"]}, "cannot use a dict as data"),
    (42, "cannot use a int as data"),
    (None, "cannot use a NoneType"),
    ((r for r in ROWS), "cannot use a generator"),
    ([{"a": 1}, "b"], "row 1 of the list is a str, not a dict"),
    ([], "the list has no rows"),
    ([{}, {}], "the list has no columns"),
    (pd.DataFrame(), "the DataFrame has no rows"),
])
def test_rejected_objects(data, match):
    message = one_line_error(match, load_rows, data)
    assert ACCEPTED in message


@pytest.mark.parametrize("name,content,match", [
    ("missing.csv", None, "data file not found: .*missing.csv"),
    ("rows.parquet", b"PAR1", "unknown file type '.parquet'"),
    ("rows", b"a,b\n1,2\n", r"unknown file type '\(no suffix\)'"),
    ("latin1.csv", "text\ncafé\n".encode("latin-1"), "latin1.csv is not valid UTF-8 .*save it as UTF-8"),
    ("latin1.jsonl", '{"text": "café"}\n'.encode("latin-1"), "is not valid UTF-8"),
    ("empty.csv", b"", "empty.csv has no rows"),
    ("header.csv", b"id,text\n", "header.csv has no rows"),
    ("bad.csv", b'a,b\n1,"unclosed\n', "cannot parse .*bad.csv"),
    ("bad.jsonl", b'{"a": 1}\n{"a": \n', "bad.jsonl line 2 is not valid JSON"),
    ("list.jsonl", b'{"a": 1}\n[1, 2]\n', "line 2 is a JSON list, not an object"),
    ("object.json", b'{"a": [1, 2]}', r"must hold a JSON array of objects \(records\)"),
    ("bad.json", b'[{"a": 1},', r"bad.json is not valid JSON \(line 1\)"),
    ("empty.json", b"[]", "empty.json has no rows"),
    ("blank.jsonl", b"\n\n", "blank.jsonl has no rows"),
])
def test_rejected_files(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    message = one_line_error(match, load_rows, path)
    assert ACCEPTED in message


def test_folder_and_unreadable_file(tmp_path, monkeypatch):
    (tmp_path / "dir.csv").mkdir()
    one_line_error("dir.csv is not a file", load_rows, tmp_path / "dir.csv")
    for name in ("locked.jsonl", "locked.csv"):
        (tmp_path / name).write_text("a\n1\n")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("pathlib.Path.read_bytes", denied)  # chmod 0 does not stop root
    monkeypatch.setattr(pd, "read_csv", denied)
    for name in ("locked.jsonl", "locked.csv"):
        message = one_line_error(f"cannot read .*{name}: Permission denied", load_rows, tmp_path / name)
        assert ACCEPTED in message


# -- check_columns --------------------------------------------------------------------------------

def test_check_columns():
    df = pd.DataFrame(ROWS)
    check_columns(df, {"text", "expected"})
    check_columns(df, {"text", "style"}, available_vars={"style": "short"})
    message = one_line_error("needs columns 'question', 'style'", check_columns, df, {"text", "question", "style"})
    assert "its columns: 'id', 'text', 'expected'" in message
    one_line_error("needs column 'question'", check_columns, df, {"question", "style"}, {"style": 1})


# -- fingerprint ----------------------------------------------------------------------------------

def test_fingerprint_equality():
    df = pd.DataFrame(ROWS)
    digest = fingerprint(df)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert fingerprint(pd.DataFrame(ROWS)) == digest
    assert fingerprint(df.set_index("id", drop=False)) == digest  # the index is not content
    with_lists = pd.DataFrame({"a": [[1, 2], {"k": 1}, None]})  # unhashable cells work
    assert fingerprint(with_lists) == fingerprint(pd.DataFrame({"a": [[1, 2], {"k": 1}, None]}))


@pytest.mark.parametrize("change", [
    lambda df: df.assign(text=["Hello", "NA "]),          # one cell
    lambda df: df.assign(id=[1, 3]),
    lambda df: df.assign(id=df["id"].astype("Int64")),     # dtype only (same cell hashes)
    lambda df: df.rename(columns={"expected": "answer"}),  # column name
    lambda df: df[["text", "id", "expected"]],             # column order
    lambda df: df.iloc[::-1],                              # row order
    lambda df: df.iloc[:1],                                # a row fewer
    lambda df: pd.concat([df, df.iloc[:1]]),               # a duplicate more
    lambda df: df.assign(text=["Hello", None]),            # missing vs "NA"
    lambda df: df.assign(expected=["hi", 1]),              # 1 vs "None" in a mixed column
])
def test_fingerprint_sensitivity(change):
    df = pd.DataFrame(ROWS)
    assert fingerprint(change(df)) != fingerprint(df)


def test_fingerprint_tells_number_from_text_in_object_columns():
    a = pd.DataFrame({"v": pd.Series(["1", "x"], dtype=object)})
    b = pd.DataFrame({"v": pd.Series([1, "x"], dtype=object)})
    assert fingerprint(a) != fingerprint(b)


# -- diff -----------------------------------------------------------------------------------------

def test_diff_by_content_counts_duplicates():
    old = pd.DataFrame({"t": ["x", "x", "y", "w"], "n": [1, 1, 2, 3]})
    new = pd.DataFrame({"t": ["x", "y", "y", "z", "w"], "n": [1.0, 2.0, 2.0, 4.0, 3.0]})  # 1 == 1.0
    result = diff(old, new)
    assert isinstance(result, DataDiff) and result.key is None
    assert result.removed.to_dict("list") == {"t": ["x"], "n": [1]} and result.removed.index.tolist() == [1]
    assert result.added["t"].tolist() == ["y", "z"] and result.added.index.tolist() == [2, 3]
    assert result.changed.empty
    assert result.summary() == "+2 rows, -1 row"
    assert diff(old, old.copy()).summary() == "no differences" and diff(old, old).empty
    assert diff(old, old.iloc[::-1]).empty  # order does not matter without a key


def test_diff_missing_values_and_columns():
    old = pd.DataFrame({"t": ["a", None], "n": [1, None]})
    new = pd.DataFrame({"t": ["a", np.nan], "n": pd.Series([1, None], dtype="Int64")})
    assert diff(old, new).empty  # None, NaN and NA are all "missing"
    wider = old.assign(extra=[None, None])
    assert diff(old, wider).empty  # an all-empty new column is no content change
    assert diff(old, old.assign(extra=["x", None])).summary() == "+1 row, -1 row"


def test_diff_with_key():
    old = pd.DataFrame({"id": [1, 2, 3, 4], "text": ["a", "b", "c", "d"], "n": [1, 2, 3, 4]})
    new = pd.DataFrame({"id": [5, 3, 2, 1], "text": ["e", "C", "b", "a"], "n": [5.0, 3.0, 20.0, 1.0]})
    result = diff(old, new, key="id")
    assert result.key == ["id"]
    assert result.added["id"].tolist() == [5] and result.removed["id"].tolist() == [4]
    changed = result.changed
    assert changed.columns.tolist() == ["id", "text_old", "text_new", "n_old", "n_new"]
    assert changed.to_dict("records") == [{"id": 2, "text_old": "b", "text_new": "b", "n_old": 2, "n_new": 20.0},
                                          {"id": 3, "text_old": "c", "text_new": "C", "n_old": 3, "n_new": 3.0}]
    assert result.summary() == "+1 row, -1 row, 2 changed"
    assert repr(result) == "DataDiff(+1 row, -1 row, 2 changed)"
    page = result._repr_html_()
    assert "+1 row, -1 row, 2 changed" in page and "Changed (2)" in page and "text_new" in page
    assert "<script" not in diff(old, old.assign(text=["<script>", "b", "c", "d"]), key="id")._repr_html_()
    same = diff(old, old.copy(), key=["id"])
    assert same.empty and same.summary() == "no differences"


def test_diff_with_compound_key_and_new_column():
    old = pd.DataFrame({"a": [1, 1], "b": ["x", "y"], "v": [1, 2]})
    new = pd.DataFrame({"a": [1, 1], "b": ["y", "x"], "v": [2, 1], "note": [None, "hi"]})
    result = diff(old, new, key=["a", "b"])
    assert result.changed.to_dict("records") == [{"a": 1, "b": "x", "note_old": None, "note_new": "hi"}]
    assert result.added.empty and result.removed.empty


def test_diff_key_errors():
    old = pd.DataFrame({"id": [1, 1, 2], "t": ["a", "b", "c"]})
    one_line_error("not unique in the old frame .*1 repeated, e.g. \\[1\\]", diff, old, old.iloc[1:], key="id")
    one_line_error("diff key 'nope' is not a column of the old frame", diff, old, old, key="nope")
    one_line_error("diff key is empty", diff, old, old, key=[])


# -- prepare --------------------------------------------------------------------------------------

def messy() -> pd.DataFrame:
    return pd.DataFrame({
        "text": ["  Hello\u00a0\t world  ", "Cafe\u0301", "   ", None, "Hello world", "a\r\n\r\n\r\n  b", "Café"],
        "label": ["x", "y", "z", "w", "x", "v", "y"],
        "n": [1, 2, 3, 4, 1, 6, 2],
    })


def test_prepare_steps_and_report():
    df = messy()
    before = df.copy(deep=True)
    df.attrs["source"] = {"name": "news"}
    clean = prepare(df, columns=["text"])
    # the input is untouched, values and attrs
    pd.testing.assert_frame_equal(df, before)
    assert df.attrs == {"source": {"name": "news"}}
    assert clean.attrs["source"] == {"name": "news"}
    assert clean["text"].tolist() == ["Hello world", "Café", "a\n\nb"]
    assert clean.index.tolist() == [0, 1, 5]  # rows keep their labels
    report = prepare_report(clean)
    assert report == {
        "rows_in": 7, "rows_out": 3, "columns": ["text"],
        "steps": {"normalize_unicode": {"cells_changed": 1, "form": "NFC"},
                  "collapse_whitespace": {"cells_changed": 3},
                  "strip": {"cells_changed": 2},
                  "drop_empty": {"rows_dropped": 2, "rule": "all"},
                  "drop_duplicates": {"rows_dropped": 2}},
        "cells_normalized": 1, "cells_whitespace_collapsed": 3, "cells_stripped": 2, "cells_truncated": 0,
        "empty_dropped": 2, "duplicates_dropped": 2,
    }
    json.dumps(report)  # ready to log
    report["rows_in"] = 0
    assert prepare_report(clean)["rows_in"] == 7  # a copy
    assert prepare_report(df) == {}


def test_prepare_switches():
    df = messy()
    raw = prepare(df, strip=False, normalize_unicode=None, collapse_whitespace=False, drop_empty=False,
                  drop_duplicates=False)
    pd.testing.assert_frame_equal(raw, df)
    assert prepare_report(raw)["steps"] == {} and prepare_report(raw)["columns"] == ["text", "label"]
    truncated = prepare(df, columns=["text"], max_chars=3, drop_duplicates=False)
    assert truncated["text"].tolist() == ["Hel", "Caf", "Hel", "a\n\n", "Caf"]
    assert prepare_report(truncated)["cells_truncated"] == 5
    assert prepare_report(truncated)["steps"]["truncate"] == {"cells_changed": 5, "max_chars": 3}
    nfkc = prepare(pd.DataFrame({"t": ["ﬁ", "fi"]}), normalize_unicode="NFKC")
    assert nfkc["t"].tolist() == ["fi"] and prepare_report(nfkc)["duplicates_dropped"] == 1


def test_prepare_drop_empty_rules_and_duplicates_whole_row():
    df = pd.DataFrame({"q": ["a", "", "b", "c", "c"], "ctx": ["x", "y", "", None, None]})
    assert prepare(df)["q"].tolist() == ["a", "", "b", "c"]  # all columns empty: none; duplicate "c" row
    assert prepare(df, drop_empty="any")["q"].tolist() == ["a"]
    assert prepare(df, columns="q")["q"].tolist() == ["a", "b", "c"]
    kept = prepare(pd.DataFrame({"q": ["a", "a"], "n": [1, 2]}))  # same text, other columns differ
    assert len(kept) == 2


def test_prepare_default_columns_and_types():
    df = pd.DataFrame({"s": pd.Series([" a ", None], dtype="string"), "o": [" b ", 3], "n": [1.5, 2.5],
                       "lst": [[1], [2]]})
    clean = prepare(df, drop_duplicates=False)
    assert prepare_report(clean)["columns"] == ["s", "o", "lst"]  # text-like columns only
    assert clean["s"].tolist()[0] == "a" and str(clean["s"].dtype) == "string"  # dtype kept
    assert clean["o"].tolist() == ["b", 3]  # non-text cells untouched
    assert clean["lst"].tolist() == [[1], [2]]


@pytest.mark.parametrize("kwargs,match", [
    ({"columns": ["text", "nope"]}, "prepare: no column 'nope' in the data \\(its columns: 'text', 'label', 'n'\\)"),
    ({"normalize_unicode": "NFX"}, "normalize_unicode='NFX' is not valid"),
    ({"max_chars": 0}, "max_chars=0 must be"),
    ({"max_chars": 2.5}, "max_chars=2.5 must be"),
    ({"drop_empty": "some"}, "drop_empty='some' is not valid"),
])
def test_prepare_errors(kwargs, match):
    one_line_error(match, prepare, messy(), **kwargs)
