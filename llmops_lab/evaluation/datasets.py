"""Datasets for batch evaluation: load, check against a template, fingerprint, diff, clean and split.

>>> df = load_rows("data/news.jsonl")                          # doctest: +SKIP
>>> check_columns(df, PromptTemplate("Summarize {{ text }}").variables)      # doctest: +SKIP
>>> clean = prepare(df, columns=["text"], max_chars=4000)                   # doctest: +SKIP
>>> prepare_report(clean)["duplicates_dropped"], fingerprint(clean)         # doctest: +SKIP
(3, '9c1e0b2f4d7a6e15')
>>> diff(old_df, clean, key="id").summary()                                 # doctest: +SKIP
'+3 rows, -1 row, 2 changed'

Pure apart from reading files in :func:`load_rows`. pandas is imported inside the functions (importing
this module stays cheap); nothing here talks to MLflow (the batch module logs the dataset).
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from llmops_lab.exceptions import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

ACCEPTED = "a pandas DataFrame, a list of dicts, or a path to a .csv, .jsonl or .json (records) file"
PREPARE_ATTR = "llmops.prepare"
UNICODE_FORMS = ("NFC", "NFKC", "NFD", "NFKD")
_NULL_HASH = 0x9E3779B97F4A7C15  # stands for a missing cell (None, NaN, NA alike) in diff and duplicates
_HTML_ROWS = 20


# -- loading --------------------------------------------------------------------------------------

def _load_error(message: str) -> ConfigError:
    return ConfigError(f"{message}; load_rows accepts {ACCEPTED}")


def load_rows(data: Any) -> "pd.DataFrame":
    """The rows of a dataset as a DataFrame (a DataFrame is returned as is, not copied).

    >>> load_rows([{"text": "a", "expected": "b"}]).columns.tolist()
    ['text', 'expected']
    >>> load_rows("news.csv")        # UTF-8; only empty cells are missing (NA, None... stay text)  # doctest: +SKIP
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        frame, what = data, "the DataFrame"
    elif isinstance(data, list):
        for number, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise _load_error(f"row {number} of the list is a {type(row).__name__}, not a dict")
        frame, what = pd.DataFrame([dict(row) for row in data]), "the list"
    elif isinstance(data, (str, os.PathLike)):
        frame, what = _read_file(Path(data)), str(data)
    else:
        raise _load_error(f"cannot use a {type(data).__name__} as data")
    if len(frame) == 0 or len(frame.columns) == 0:
        raise _load_error(f"{what} has no rows" if len(frame) == 0 else f"{what} has no columns")
    return frame


def _read_file(path: Path) -> "pd.DataFrame":
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise _load_error(f"cannot read {path}: unknown file type {suffix or '(no suffix)'!r}")
    if not path.exists():
        raise _load_error(f"data file not found: {path}")
    if not path.is_file():
        raise _load_error(f"{path} is not a file")
    try:
        if suffix == ".csv":
            # utf-8-sig: a BOM (Excel) is skipped; invalid UTF-8 still fails. Only empty cells are
            # missing values: "NA" (Namibia), "None" or "null" in a text column stay text.
            return pd.read_csv(path, encoding="utf-8-sig", keep_default_na=False, na_values=[""])
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise _load_error(f"{path} is not valid UTF-8 (byte {err.start}): save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise _load_error(f"{path} has no rows") from None
    except (pd.errors.ParserError, ValueError) as err:
        raise _load_error(f"cannot parse {path}: {_first_line(err)}") from None
    except OSError as err:
        raise _load_error(f"cannot read {path}: {err.strerror or err}") from None
    return pd.DataFrame(_records(path, text, lines=suffix == ".jsonl"))


def _records(path: Path, text: str, lines: bool) -> list[dict[str, Any]]:
    if not lines:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":  # "Extra data": JSON lines in a .json file, read them as such
                raise _load_error(f"{path} is not valid JSON (line {err.lineno}): {err.msg}") from None
        else:
            if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
                raise _load_error(f"{path} must hold a JSON array of objects (records)")
            return value
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines(): U+2028 may be inside strings
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise _load_error(f"{path} line {number} is not valid JSON: {err.msg}") from None
        if not isinstance(row, dict):
            raise _load_error(f"{path} line {number} is a JSON {type(row).__name__}, not an object")
        rows.append(row)
    return rows


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


# -- checking -------------------------------------------------------------------------------------

def _names(values: Iterable[Any], limit: int = 30) -> str:
    names = [repr(str(v)) for v in values]
    return ", ".join(names[:limit]) + (f", … ({len(names) - limit} more)" if len(names) > limit else "")


def check_columns(df: "pd.DataFrame", needed: Iterable[str], available_vars: Mapping[str, Any] | None = None) -> None:
    """Fail if the template needs a variable that is neither a column nor in ``available_vars``.

    >>> check_columns(df, {"text", "style"}, available_vars={"style": "short"})   # doctest: +SKIP
    """
    have = {str(c) for c in df.columns} | set(available_vars or {})
    missing = sorted(set(needed) - have)
    if missing:
        noun = "column" if len(missing) == 1 else "columns"
        raise ConfigError(f"the template needs {noun} {_names(missing)} but the data has none such "
                          f"(its columns: {_names(df.columns)}): rename a column or pass the value as a variable")


# -- hashing --------------------------------------------------------------------------------------

def _tag(value: Any) -> str:
    """Text for a non-string cell of an object column; the NUL prefix keeps it apart from real strings."""
    if isinstance(value, str):
        return value
    try:
        body = json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)
    except (TypeError, ValueError):
        body = repr(value)
    return f"\x00{type(value).__name__}:{body}"


def _column_hashes(series: "pd.Series", canonical: bool) -> "np.ndarray":
    """One uint64 per cell. ``canonical``: 1 == 1.0 == Int64 1, missing cells alike (for diff/duplicates)."""
    import numpy as np
    import pandas as pd
    from pandas.api import types
    from pandas.util import hash_pandas_object

    values = series
    if canonical and isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    if types.is_object_dtype(values.dtype) and types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        values = values.map(_tag, na_action="ignore")  # lists, dicts, mixed types: hashable text
    hashes = hash_pandas_object(values, index=False).to_numpy(dtype="uint64", copy=True)
    if canonical:
        if types.is_float_dtype(values.dtype):
            floats = values.to_numpy(dtype="float64", na_value=np.nan)
            with np.errstate(invalid="ignore"):
                integral = np.isfinite(floats) & (np.floor(floats) == floats) & (np.abs(floats) < 2.0 ** 63)
            if integral.any():
                as_int = pd.Series(np.where(integral, floats, 0).astype("int64"))
                int_hashes = hash_pandas_object(as_int, index=False).to_numpy(dtype="uint64")
                hashes = np.where(integral, int_hashes, hashes)
        hashes[values.isna().to_numpy()] = _NULL_HASH
    return hashes


def _row_hashes(df: "pd.DataFrame", columns: list[Any]) -> "np.ndarray":
    """A canonical content hash per row over ``columns`` (a column missing from ``df`` counts as empty)."""
    import numpy as np
    import pandas as pd
    from pandas.util import hash_pandas_object

    if not columns:
        return np.zeros(len(df), dtype="uint64")
    parts = []
    for column in columns:
        if column not in df.columns:
            parts.append(np.full(len(df), _NULL_HASH, dtype="uint64"))
            continue
        selected = df[column]
        # a repeated column name selects a frame: hash each of its columns
        for series in ([selected] if isinstance(selected, pd.Series) else [s for _, s in selected.items()]):
            parts.append(_column_hashes(series, canonical=True))
    return hash_pandas_object(pd.DataFrame(dict(enumerate(parts))), index=False).to_numpy(dtype="uint64")


def fingerprint(df: "pd.DataFrame") -> str:
    """16 hex characters for content and schema (column names, order, dtypes); row order counts.

    >>> fingerprint(pd.DataFrame({"a": [1, 2]})) == fingerprint(pd.DataFrame({"a": [1, 2]}))   # doctest: +SKIP
    True
    """
    digest = hashlib.sha256(f"rows={len(df)};cols={len(df.columns)}".encode())
    for position, column in enumerate(df.columns):
        series = df.iloc[:, position]
        digest.update(f"\x1f{type(column).__name__}:{column}\x1e{series.dtype}\x1e".encode("utf-8", "surrogatepass"))
        digest.update(_column_hashes(series, canonical=False).tobytes())
    return digest.hexdigest()[:16]


# -- diff -----------------------------------------------------------------------------------------

def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass
class DataDiff:
    """What changed between two versions of a dataset; see :func:`diff`.

    ``changed`` holds the key columns, then ``<column>_old`` / ``<column>_new`` for every column that
    differs in at least one changed row (empty without a key).
    """

    added: "pd.DataFrame" = field(repr=False)
    removed: "pd.DataFrame" = field(repr=False)
    changed: "pd.DataFrame" = field(repr=False)
    key: list[str] | None = None

    @property
    def empty(self) -> bool:
        return len(self.added) == 0 and len(self.removed) == 0 and len(self.changed) == 0

    def summary(self) -> str:
        """E.g. ``'+3 rows, -1 row, 2 changed'`` (no ``changed`` part without a key)."""
        if self.empty:
            return "no differences"
        parts = [f"+{_plural(len(self.added), 'row')}", f"-{_plural(len(self.removed), 'row')}"]
        if self.key is not None:
            parts.append(f"{len(self.changed)} changed")
        return ", ".join(parts)

    def __repr__(self) -> str:
        return f"DataDiff({self.summary()})"

    def _repr_html_(self) -> str:
        key = f" by {html.escape(', '.join(self.key))}" if self.key else ""
        parts = [f"<div><p><b>Data diff{key}:</b> {html.escape(self.summary())}</p>"]
        for name, frame in (("Added", self.added), ("Removed", self.removed), ("Changed", self.changed)):
            if len(frame):
                more = f"<p>… {len(frame) - _HTML_ROWS} more</p>" if len(frame) > _HTML_ROWS else ""
                parts.append(f"<details open><summary>{name} ({len(frame)})</summary>"
                             f"{frame.head(_HTML_ROWS).to_html()}{more}</details>")
        return "".join(parts) + "</div>"


def diff(old: "pd.DataFrame", new: "pd.DataFrame", key: str | list[str] | None = None) -> DataDiff:
    """Rows added, removed and (with a ``key``) changed from ``old`` to ``new``.

    Without a key, rows are compared by content as a multiset: a row present twice in ``old`` and
    once in ``new`` is one removed row. Values compare by meaning: 1 == 1.0, missing cells alike.

    >>> diff(v1, v2, key="id").summary()                                          # doctest: +SKIP
    '+3 rows, -1 row, 2 changed'
    """
    import pandas as pd

    columns = list(dict.fromkeys([*old.columns, *new.columns]))
    if key is None:
        old_hash, new_hash = pd.Series(_row_hashes(old, columns)), pd.Series(_row_hashes(new, columns))
        old_extra = old_hash.groupby(old_hash).cumcount() >= old_hash.map(new_hash.value_counts()).fillna(0)
        new_extra = new_hash.groupby(new_hash).cumcount() >= new_hash.map(old_hash.value_counts()).fillna(0)
        return DataDiff(added=new[new_extra.to_numpy()], removed=old[old_extra.to_numpy()],
                        changed=pd.DataFrame(), key=None)

    keys = [key] if isinstance(key, str) else list(key)
    if not keys:
        raise ConfigError("diff key is empty: pass a column name, a list of them, or None")
    for frame, name in ((old, "old"), (new, "new")):
        missing = [k for k in keys if k not in frame.columns]
        if missing:
            raise ConfigError(f"diff key {_names(missing)} is not a column of the {name} frame "
                              f"(its columns: {_names(frame.columns)})")
    old_key, new_key = pd.Series(_row_hashes(old, keys)), pd.Series(_row_hashes(new, keys))
    for hashes, frame, name in ((old_key, old, "old"), (new_key, new, "new")):
        repeated = hashes.duplicated().to_numpy()
        if repeated.any():
            example = frame[keys][repeated].iloc[0].tolist()
            raise ConfigError(f"diff key {_names(keys)} is not unique in the {name} frame ({int(repeated.sum())} "
                              f"repeated, e.g. {example}): use a unique key or key=None")
    in_new, in_old = old_key.isin(new_key).to_numpy(), new_key.isin(old_key).to_numpy()
    others = [c for c in columns if c not in keys]
    new_pos = pd.Series(range(len(new)), index=new_key.to_numpy())
    new_rows = new.iloc[new_pos.loc[old_key[in_new].to_numpy()].to_numpy()]  # in old's order
    old_common = old[in_new]
    differs = [c for c in others
               if (_row_hashes(old_common, [c]) != _row_hashes(new_rows, [c])).any()]
    row_changed = _row_hashes(old_common, others) != _row_hashes(new_rows, others)
    changed = new_rows[keys][row_changed].reset_index(drop=True)
    for column in differs:
        for side, frame in (("old", old_common), ("new", new_rows)):
            values = (frame[column][row_changed].reset_index(drop=True) if column in frame.columns
                      else pd.Series([None] * int(row_changed.sum()), dtype=object))
            changed[f"{column}_{side}"] = values
    return DataDiff(added=new[~in_old], removed=old[~in_new], changed=changed, key=keys)


# -- cleaning -------------------------------------------------------------------------------------

_NEWLINES = re.compile(r"\r\n?")
_HORIZONTAL = re.compile(r"[^\S\n]+")  # whitespace runs without newlines (tabs, NBSP, ...)
_AROUND_NEWLINE = re.compile(r" ?\n ?")
_BLANK_LINES = re.compile(r"\n{3,}")


def _collapse(text: str) -> str:
    """Runs of spaces/tabs to one space, at most one blank line in a row; line breaks are kept."""
    text = _HORIZONTAL.sub(" ", _NEWLINES.sub("\n", text))
    return _BLANK_LINES.sub("\n\n", _AROUND_NEWLINE.sub("\n", text))


def _text_columns(df: "pd.DataFrame") -> list[Any]:
    import pandas as pd
    from pandas.api import types

    return [c for c in df.columns
            if types.is_object_dtype(df[c].dtype) or isinstance(df[c].dtype, pd.StringDtype)]


def prepare(df: "pd.DataFrame", *, columns: Iterable[str] | str | None = None, strip: bool = True,
            normalize_unicode: str | None = "NFC", collapse_whitespace: bool = True, drop_empty: bool | str = True,
            drop_duplicates: bool = True, max_chars: int | None = None) -> "pd.DataFrame":
    """A cleaned copy of ``df`` (never changed in place) with a report in ``attrs["llmops.prepare"]``.

    Steps, in order, on the text cells of ``columns`` (default: every object/string column):
    Unicode normalization, whitespace collapsing (line breaks kept), strip, truncation to
    ``max_chars``; then rows whose cleaned columns are all empty are dropped (``drop_empty="any"``:
    any of them empty), then duplicate rows (whole row, after cleaning; the first is kept).
    The index is kept, so a row can be traced back to the input.

    >>> clean = prepare(df, columns=["text"], max_chars=2000)                    # doctest: +SKIP
    >>> prepare_report(clean)["empty_dropped"]                                   # doctest: +SKIP
    2
    """
    import pandas as pd

    if isinstance(columns, str):
        columns = [columns]
    if columns is None:
        targets = _text_columns(df)
    else:
        targets = list(dict.fromkeys(columns))
        unknown = [c for c in targets if c not in df.columns]
        if unknown:
            raise ConfigError(f"prepare: no column {_names(unknown)} in the data (its columns: {_names(df.columns)})")
    form = normalize_unicode or None
    if form is not None and form not in UNICODE_FORMS:
        raise ConfigError(f"normalize_unicode={normalize_unicode!r} is not valid: use one of {', '.join(UNICODE_FORMS)} "
                          "or None")
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
        raise ConfigError(f"max_chars={max_chars!r} must be a whole number of characters, at least 1, or None")
    if drop_empty not in (True, False, "all", "any"):
        raise ConfigError(f"drop_empty={drop_empty!r} is not valid: use True (all columns empty), 'any' or False")

    cell_steps: list[tuple[str, Any]] = []
    if form:
        cell_steps.append(("normalize_unicode", lambda s: unicodedata.normalize(form, s)))
    if collapse_whitespace:
        cell_steps.append(("collapse_whitespace", _collapse))
    if strip:
        cell_steps.append(("strip", str.strip))
    if max_chars is not None:
        cell_steps.append(("truncate", lambda s: s[:max_chars]))

    result = df.copy()  # deep: the caller's frame and its attrs stay as they were
    counts = {name: 0 for name, _ in cell_steps}
    for column in targets:
        values = result[column].tolist()
        positions = [i for i, v in enumerate(values) if isinstance(v, str)]
        if not positions or not cell_steps:
            continue
        cells = [values[i] for i in positions]
        for name, step in cell_steps:
            cleaned = [step(v) for v in cells]
            counts[name] += sum(a != b for a, b in zip(cells, cleaned))
            cells = cleaned
        for i, v in zip(positions, cells):
            values[i] = v
        result[column] = pd.Series(values, index=result.index, dtype=result[column].dtype, name=column)

    report: dict[str, Any] = {"rows_in": len(df), "rows_out": None, "columns": [str(c) for c in targets],
                              "steps": {}}
    labels = {"normalize_unicode": "cells_normalized", "collapse_whitespace": "cells_whitespace_collapsed",
              "strip": "cells_stripped", "truncate": "cells_truncated"}
    for name, _ in cell_steps:
        detail: dict[str, Any] = {"cells_changed": counts[name]}
        if name == "normalize_unicode":
            detail["form"] = form
        if name == "truncate":
            detail["max_chars"] = max_chars
        report["steps"][name] = detail
    for name, label in labels.items():
        report[label] = counts.get(name, 0)

    report["empty_dropped"] = 0
    if drop_empty and targets:
        empty = pd.DataFrame({i: result[c].map(_is_empty).astype(bool) for i, c in enumerate(targets)},
                             index=result.index)
        gone = (empty.any(axis=1) if drop_empty == "any" else empty.all(axis=1)).to_numpy()
        result = result[~gone]
        report["empty_dropped"] = int(gone.sum())
        report["steps"]["drop_empty"] = {"rows_dropped": report["empty_dropped"],
                                         "rule": "any" if drop_empty == "any" else "all"}
    report["duplicates_dropped"] = 0
    if drop_duplicates:
        hashes = pd.Series(_row_hashes(result, list(result.columns)))
        repeated = hashes.duplicated().to_numpy()
        result = result[~repeated]
        report["duplicates_dropped"] = int(repeated.sum())
        report["steps"]["drop_duplicates"] = {"rows_dropped": report["duplicates_dropped"]}
    report["rows_out"] = len(result)
    result.attrs = {**result.attrs, PREPARE_ATTR: report}
    return result


def _is_empty(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and arrays: not empty here
        return False


def prepare_report(df: "pd.DataFrame") -> dict[str, Any]:
    """What :func:`prepare` did to make ``df``; ``{}`` if ``df`` did not come from it.

    Rows in and out, rows dropped as empty or duplicate, cells changed by each step, as a JSON-ready dict:
    ``{"rows_in": 120, "rows_out": 117, "empty_dropped": 2, "duplicates_dropped": 1, "cells_stripped": 9, ...}``.
    """
    import copy

    return copy.deepcopy(df.attrs.get(PREPARE_ATTR, {}))


# -- splitting ------------------------------------------------------------------------------------

SPLITS = ("train", "validation", "test")


def split(df: "pd.DataFrame", fractions: tuple[float, float, float] = (0.5, 0.25, 0.25), *,
          label: str | None = None, seed: int = 0) -> "pd.Series":
    """Each row's split (``train``, ``validation`` or ``test``), seeded; stratified by ``label`` when given
    (each label's rows are shuffled and cut in the same proportions, so every split keeps the label mix).

    >>> import pandas as pd
    >>> s = split(pd.DataFrame({"y": ["a"] * 8 + ["b"] * 4}), label="y", seed=0)
    >>> s.value_counts().to_dict(), s[:8].value_counts().to_dict()
    ({'train': 6, 'validation': 3, 'test': 3}, {'train': 4, 'validation': 2, 'test': 2})
    """
    import random

    import pandas as pd

    if len(fractions) != 3 or any(not isinstance(f, (int, float)) or f <= 0 for f in fractions):
        raise ConfigError(f"split fractions {fractions!r}: give three positive numbers (train, validation, test)")
    total = float(sum(fractions))
    cuts = (fractions[0] / total, (fractions[0] + fractions[1]) / total)
    if label is not None and label not in df.columns:
        raise ConfigError(f"label column {label!r} is not in the data (columns: {_names(df.columns)})")
    groups: dict[str, list[int]] = {}
    keys = df[label].astype(str).tolist() if label is not None else [""] * len(df)
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    out = [""] * len(df)
    rng = random.Random(seed)
    for key in sorted(groups):  # sorted: the same seed gives the same split whatever the row order of labels
        rows = groups[key]
        rng.shuffle(rows)
        n_train, n_val = round(len(rows) * cuts[0]), round(len(rows) * cuts[1])
        for k, i in enumerate(rows):
            out[i] = SPLITS[0] if k < n_train else SPLITS[1] if k < n_val else SPLITS[2]
    result = pd.Series(out, index=df.index, name="split")
    empty = [s for s in SPLITS if not (result == s).any()]
    if empty:
        raise ConfigError(f"{len(df)} rows are too few to split into train, validation and test ({', '.join(empty)} "
                          f"would be empty): give more rows or other fractions")
    return result
