"""The comparison grid: one row per data row, one column per variant (ipywidgets).

State lives in traitlets (``page``, ``page_size``, ``only_diff``, ``only_failures``, ``sort_by``,
``sort_desc``, ``shade_tokens``, the visible row indices and counts); every change re-renders the view from
that state. ``shade_tokens`` shows the cells of variants run with ``logprobs=True`` shaded by token
probability (alternatives on hover), with the same renderer as a single answer (:func:`explain.shade_html`).
The heavy parts are computed once (outputs matrix, failure mask, sort keys as numpy arrays) and only the
current page is rendered to HTML, so 1,000 rows x 6 variants stays responsive. Actions (rating, promote)
call the core :class:`~llmops_lab.evaluation.compare.Comparison`; nothing here talks to MLflow directly.
"""
from __future__ import annotations

import html
import math
from typing import Any, Mapping

import ipywidgets as W
import traitlets as T

from llmops_lab.analysis.diff import word_diff_html
from llmops_lab.core.explain import display_tokens, legend_html, shade_html

_CSS = """<style>
.llmops-cmp table{border-collapse:collapse;font-size:12px;table-layout:fixed}
.llmops-cmp th,.llmops-cmp td{border:1px solid #ddd;padding:4px;vertical-align:top;text-align:left;max-width:320px;
 overflow-wrap:anywhere}
.llmops-cmp th{background:#f6f6f6}
.llmops-cmp ins{background:#d4f8d4;text-decoration:none}.llmops-cmp del{background:#f8d4d4}
.llmops-cmp .meta{color:#666;font-size:11px}.llmops-cmp .err{color:#b00}
.llmops-cmp .better{color:#070;font-weight:bold}.llmops-cmp .worse{color:#b00;font-weight:bold}
.llmops-cmp .base{background:#fbfbf0}
.llmops-cmp .prompt{font-family:monospace;font-size:11px;font-weight:normal;white-space:pre-wrap;color:#333}
.llmops-cmp .widget-checkbox,.llmops-cmp .widget-toggle-button,.llmops-cmp .widget-button{flex:0 0 auto}
</style>"""
_DIRECTION = {"better": ("better", "✓ better than baseline"), "worse": ("worse", "✗ worse than baseline"),
              "no difference": ("", "no significant difference")}


def format_params(params: Mapping[str, Any] | None) -> str:
    """``{"max_tokens": 5, "temperature": 0}`` -> ``max_tokens=5 · temperature=0`` (unset ones left out)."""
    return " · ".join(f"{k}={v}" for k, v in sorted((params or {}).items()) if v is not None)


def _fmt(value: Any, spec: str = ".3f") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    try:
        if value is __import__("pandas").NA:
            return "–"
    except Exception:  # noqa: BLE001
        pass
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


class CompareGrid(W.VBox):
    """``CompareGrid(cmp)``: the grid of a :class:`Comparison`; ``cmp`` displays as one of these."""

    page = T.Int(0).tag(sync=True)
    page_size = T.Int(50).tag(sync=True)
    only_diff = T.Bool(False).tag(sync=True)
    only_failures = T.Bool(False).tag(sync=True)
    sort_by = T.Unicode("row").tag(sync=True)        # "row" or "<variant>:<column>" e.g. "1:contains_keyword"
    sort_desc = T.Bool(False).tag(sync=True)
    shade_tokens = T.Bool(False).tag(sync=True)    # cells of logprobs variants shaded by token probability
    n_rows = T.Int(0).tag(sync=True)                 # all rows
    n_visible = T.Int(0).tag(sync=True)              # rows left after the filters
    n_pages = T.Int(1).tag(sync=True)
    visible_rows = T.List(T.Int()).tag(sync=True)    # data row indices on the current page, in display order
    status = T.Unicode("").tag(sync=True)

    def __init__(self, comparison: Any, *, page_size: int = 50, **kwargs: Any):
        import numpy as np

        self.comparison = comparison
        cmp = comparison
        self._outputs = [r["output"].tolist() for r in cmp.results]
        errors = np.array([r["error"].notna().to_numpy() for r in cmp.results]).T  # rows x variants
        base = self._outputs[cmp.baseline]
        differs = np.zeros(cmp.n_rows, dtype=bool)
        for vi, outs in enumerate(self._outputs):
            if vi != cmp.baseline:
                differs |= np.fromiter(((" ".join((a or "").split()) != " ".join((b or "").split()))
                                        for a, b in zip(outs, base)), dtype=bool, count=cmp.n_rows)
        failed = errors.any(axis=1)
        for s in cmp.scorers:
            values = np.array([r[s].to_numpy(dtype=float, na_value=np.nan) for r in cmp.results])
            if np.isin(values[~np.isnan(values)], (0.0, 1.0)).all():  # pass/fail scorer: a 0 is a failure
                failed |= (values == 0).any(axis=0)
        self._differs, self._failed, self._errors = differs, failed, errors
        self._inputs = cmp.inputs()
        self._input_text = [" · ".join(f"{k}: {v}" for k, v in zip(self._inputs.columns, values))
                            for values in self._inputs.itertuples(index=False, name=None)]
        self._header_html: str | None = None
        self._order_key: tuple | None = None
        self._order = np.arange(cmp.n_rows)
        labels = [("row", "row")]
        for v in cmp.variants:
            for col in [*cmp.scorers, "latency_ms", "total_tokens", "cost_usd"]:
                labels.append((f"[{v.index}] {col}", f"{v.index}:{col}"))
        variant_options = [(f"[{v.index}] {v.label}", v.index) for v in cmp.variants]

        # -- controls, linked to the state
        auto = W.Layout(width="auto", flex="0 0 auto")
        self._diff_box = W.Checkbox(description="only rows that differ", indent=False, layout=auto,
                                    tooltip="hide rows where every variant wrote the same as the baseline")
        self._fail_box = W.Checkbox(description="only failures", indent=False, layout=auto,
                                    tooltip="rows with an error or a failed pass/fail score in any variant")
        self._sort = W.Dropdown(options=labels, description="sort", layout=W.Layout(width="260px", flex="0 0 auto"),
                                tooltip="sort the rows by a variant's score, latency, tokens or cost")
        self._desc = W.ToggleButton(description="descending", layout=auto, tooltip="reverse the sort order")
        self._logprob_variants = [cmp.has_logprobs(v.index) for v in cmp.variants]
        self._shade_box = W.Checkbox(description="shade tokens by probability", indent=False, layout=auto,
                                     disabled=not any(self._logprob_variants),
                                     tooltip="shade each answer by token probability" if any(self._logprob_variants)
                                     else "needs a comparison run with logprobs=True")
        self._prev = W.Button(description="◀", layout=W.Layout(width="40px", flex="0 0 auto"),
                              tooltip="previous page")
        self._next = W.Button(description="▶", layout=W.Layout(width="40px", flex="0 0 auto"), tooltip="next page")
        self._page_label = W.HTML()
        for control, name in ((self._diff_box, "only_diff"), (self._fail_box, "only_failures"),
                              (self._sort, "sort_by"), (self._desc, "sort_desc"), (self._shade_box, "shade_tokens")):
            W.link((control, "value"), (self, name))
        self._prev.on_click(lambda _: self.set_trait("page", max(0, self.page - 1)))
        self._next.on_click(lambda _: self.set_trait("page", min(self.n_pages - 1, self.page + 1)))
        self._header = W.HTML()
        self._grid = W.HTML()

        # -- rating and promotion panels (call the core)
        fixed = {"flex": "0 0 auto"}
        self._rate_row = W.BoundedIntText(value=0, min=0, max=max(cmp.n_rows - 1, 0), description="row",
                                          layout=W.Layout(width="140px", **fixed), tooltip="the row to rate (#)")
        self._rate_variant = W.Dropdown(options=variant_options, description="variant",
                                        layout=W.Layout(width="280px", **fixed), tooltip="the variant to rate")
        # Text labels with the emoji: without an emoji font the buttons would be empty boxes.
        self._up = W.Button(description="👍 good", layout=auto, tooltip="rate this cell good (MLflow feedback)")
        self._down = W.Button(description="👎 bad", layout=auto, tooltip="rate this cell bad (MLflow feedback)")
        self._score = W.Dropdown(options=[("score –", None)] + [(str(i), i) for i in range(1, 6)],
                                 layout=W.Layout(width="90px", **fixed), tooltip="optional score 1-5")
        self._comment = W.Text(placeholder="comment (optional)", layout=W.Layout(width="220px", **fixed),
                               tooltip="optional comment, logged with the rating")
        self._up.on_click(lambda _: self._rate(True))
        self._down.on_click(lambda _: self._rate(False))
        self._promote_variant = W.Dropdown(options=variant_options, description="promote",
                                           layout=W.Layout(width="280px", **fixed),
                                           tooltip="the variant to register and point the alias at")
        self._prompt_name = W.Text(description="name", placeholder="prompt name (needed for inline templates)",
                                   layout=W.Layout(width="300px", **fixed),
                                   tooltip="registry name to promote under")
        self._alias = W.Text(value="production", description="alias", layout=W.Layout(width="200px", **fixed),
                             tooltip="the alias applications load, e.g. name@production")
        self._reason = W.Text(placeholder="why (logged)", layout=W.Layout(width="220px", **fixed),
                              tooltip="why this variant: logged on the version and the comparison run")
        self._promote_button = W.Button(description="Promote", button_style="warning", layout=auto,
                                        tooltip="register the variant's prompt (if needed) and move the alias")
        self._promote_button.on_click(lambda _: self._promote())
        self._promote_variant.observe(lambda _change: self._suggest_name(), names="value")
        self._suggest_name()
        self._status = W.HTML()
        W.dlink((self, "status"), (self._status, "value"))

        wrap = W.Layout(flex_flow="row wrap", align_items="center", grid_gap="4px 12px")  # whole controls wrap
        super().__init__(children=[
            W.HTML(_CSS),
            W.HBox([self._diff_box, self._fail_box, self._shade_box, self._sort, self._desc, self._prev,
                    self._page_label, self._next], layout=wrap),
            self._header, self._grid,
            W.HBox([self._rate_row, self._rate_variant, self._up, self._down, self._score, self._comment],
                   layout=wrap),
            W.HBox([self._promote_variant, self._prompt_name, self._alias, self._reason, self._promote_button],
                   layout=wrap),
            self._status], **kwargs)
        self.add_class("llmops-cmp")
        self.n_rows = cmp.n_rows
        self.page_size = page_size
        self.observe(self._on_state, names=["page", "page_size", "only_diff", "only_failures", "sort_by", "sort_desc"])
        self.observe(lambda _change: self.refresh(), names=["shade_tokens"])  # same rows, another view
        self.refresh()

    # -- state -> order -> page ----------------------------------------------------------------------
    def _compute_order(self):
        import numpy as np

        key = (self.only_diff, self.only_failures, self.sort_by, self.sort_desc)
        if key == self._order_key:
            return self._order
        cmp = self.comparison
        mask = np.ones(cmp.n_rows, dtype=bool)
        if self.only_diff:
            mask &= self._differs
        if self.only_failures:
            mask &= self._failed
        rows = np.flatnonzero(mask)
        if self.sort_by != "row":
            vi, _, col = self.sort_by.partition(":")
            values = cmp.results[int(vi)][col].to_numpy(dtype=float, na_value=np.nan)[rows]
            keys = np.where(np.isnan(values), np.inf if not self.sort_desc else -np.inf, values)
            order = np.argsort(-keys if self.sort_desc else keys, kind="stable")
            rows = rows[order]
        elif self.sort_desc:
            rows = rows[::-1]
        self._order_key, self._order = key, rows
        return rows

    def _on_state(self, change: dict) -> None:
        if change["name"] != "page" and self.page != 0:
            self.page = 0  # a new filter or sort starts at the first page (this observer then re-renders)
            return
        self.refresh()

    def refresh(self, header: bool = False) -> None:
        """Recompute the visible rows from the state and re-render the view."""
        rows = self._compute_order()
        size = max(1, self.page_size)
        pages = max(1, math.ceil(len(rows) / size))
        with self.hold_trait_notifications():
            self.n_visible = int(len(rows))
            self.n_pages = pages
            if self.page >= pages:
                self.page = pages - 1
            start = self.page * size
            self.visible_rows = [int(i) for i in rows[start:start + size]]
        if header or self._header_html is None:
            self._header_html = self._render_header()
        self._header.value = self._header_html
        self._page_label.value = (f"page {self.page + 1}/{self.n_pages} · {self.n_visible} of {self.n_rows} rows")
        self._grid.value = self.render_rows()

    # -- view ------------------------------------------------------------------------------------------
    def _render_header(self) -> str:
        cmp = self.comparison
        summary = cmp.summary()
        parts = ["<table><tr><th>variant</th>"]
        for v in cmp.variants:
            text = str(v.template)
            shown = text if len(text) <= 240 else text[:239].rstrip() + "…"
            name = f"{v.prompt_name}@{v.prompt_version}" if v.prompt_version is not None else "inline template"
            parts.append(f"<th>[{v.index}] {html.escape(v.label)}{' (baseline)' if v.index == cmp.baseline else ''}"
                         f"<div class='prompt' title='{html.escape(text)}'>{html.escape(shown)}</div>"
                         f"<span class='meta'>{html.escape(name)} · {html.escape(str(v.model))}"
                         f"{' · ' + html.escape(format_params(v.params)) if format_params(v.params) else ''}"
                         "</span></th>")
        parts.append("</tr>")

        def line(title: str, fn) -> None:
            parts.append(f"<tr><td class='meta'>{title}</td>"
                         + "".join(f"<td>{fn(summary.iloc[i], i)}</td>" for i in range(len(cmp.variants))) + "</tr>")

        for s in cmp.scorers:
            line(f"{html.escape(s)} mean", lambda r, i, s=s: _fmt(r.get(f"{s}_mean")))
        if cmp.primary:
            def vs(r, i):
                if i == cmp.baseline:
                    return "baseline"
                text = (f"{_fmt(r['wins'], 'd')}/{_fmt(r['ties'], 'd')}/{_fmt(r['losses'], 'd')} · win "
                        f"{_fmt(r['win_rate'], '.0%')} · p={_fmt(r['p_value'], '.3g')} ({r['test'] or '–'})")
                direction = r.get("direction")
                if not isinstance(direction, str) or direction not in _DIRECTION:
                    return text
                css, verdict = _DIRECTION[direction]
                return f"{text}<br><span class='{css}'>{verdict}</span>" if css else f"{text}<br>{verdict}"
            line(f"W/T/L vs baseline ({html.escape(cmp.primary)})", vs)
        if "human_up" in summary.columns:
            line("human 👍 good / 👎 bad · score", lambda r, i: f"{r['human_up']}/{r['human_down']} · "
                                                     f"{_fmt(r['human_score_mean'], '.1f')}")

        def latency(r, i):
            p50 = r["latency_p50_ms"]
            if p50 is None or (isinstance(p50, float) and math.isnan(p50)):  # no row reached the model
                return f"– (all {r['cached']} rows cached)" if r["cached"] else "–"
            cached = f" · {r['cached']} cached" if r["cached"] else ""
            return f"{_fmt(r['latency_p50_ms'], ',.0f')} ms{cached}"
        line("p50 latency", latency)
        line("total cost", lambda r, i: "unknown" if r["cost_usd"] is None or (isinstance(r["cost_usd"], float)
                                                                               and math.isnan(r["cost_usd"]))
             else f"${r['cost_usd']:.4f}")
        line("errors", lambda r, i: _fmt(r["errors"], "d"))
        parts.append("</table>")
        return "".join(parts)

    def render_cell(self, row: int, vi: int) -> str:
        cmp = self.comparison
        res = cmp.results[vi]
        if self._errors[row, vi]:
            body = f"<span class='err'>error: {html.escape(str(res['error'].iat[row]))[:300]}</span>"
        elif self.shade_tokens and self._logprob_variants[vi]:
            tokens = cmp.tokens(row, vi)
            shown = display_tokens(tokens)  # a saved widget state is storage too: secrets masked
            body = (shade_html(shown, legend=False, text=str(self._outputs[vi][row] or ""))
                    if shown is not None or tokens is None else "<span class='err'>(tokens hidden)</span>")
        elif vi == cmp.baseline:
            body = html.escape(str(self._outputs[vi][row] or ""))
        else:
            body = word_diff_html(self._outputs[cmp.baseline][row], self._outputs[vi][row])
        scores = " ".join(f"{html.escape(s)}={_fmt(res[s].iat[row], '.2g')}" for s in cmp.scorers)
        cost = res["cost_usd"].iat[row]
        meta = (f"{scores} · {_fmt(res['latency_ms'].iat[row], ',.0f')} ms · {int(res['total_tokens'].iat[row])} tok · "
                + ("$?" if cost is None or (isinstance(cost, float) and math.isnan(cost)) else f"${cost:.5f}")
                + (" · cached" if bool(res["cached"].iat[row]) else ""))
        rating = cmp.ratings.get((row, vi))
        if rating:
            meta += " · " + {True: "👍 good", False: "👎 bad", None: ""}[rating.get("thumbs")]
            if rating.get("score"):
                meta += f" · {rating['score']}/5"
        return f"<td{' class=base' if vi == cmp.baseline else ''}>{body}<div class='meta'>{meta}</div></td>"

    def render_rows(self) -> str:
        """The current page as an HTML table (only these rows are rendered)."""
        n_variants = len(self.comparison.variants)
        parts = [legend_html()] if self.shade_tokens and any(self._logprob_variants) else []
        parts.append("<table>")
        for row in self.visible_rows:
            parts.append(f"<tr><td><b>#{row}</b> <span class='meta'>{html.escape(self._input_text[row][:300])}"
                         "</span></td>")
            parts.extend(self.render_cell(row, vi) for vi in range(n_variants))
            parts.append("</tr>")
        if not self.visible_rows:
            parts.append("<tr><td>no rows match the filters</td></tr>")
        parts.append("</table>")
        return "".join(parts)

    # -- actions -------------------------------------------------------------------------------------
    def _rate(self, thumbs: bool) -> None:
        try:
            self.comparison.rate(int(self._rate_row.value), int(self._rate_variant.value), thumbs=thumbs,
                                 score=self._score.value, comment=self._comment.value or None)
        except Exception as err:  # noqa: BLE001 - shown in the widget, never a traceback in the grid
            self.status = f"<span class='err'>{html.escape(str(err))}</span>"
            return
        self._comment.value = ""
        self.status = (f"rated row {self._rate_row.value} of [{self._rate_variant.value}] "
                       f"{'👍 good' if thumbs else '👎 bad'}")

    def rate(self, row: int, variant: int, thumbs: bool, score: int | None = None, comment: str | None = None) -> None:
        """What the 👍/👎 buttons do, callable from code and tests."""
        self._rate_row.value, self._rate_variant.value = row, variant
        self._score.value, self._comment.value = score, comment or ""
        (self._up if thumbs else self._down).click()

    def promote(self, variant: int, alias: str = "production", *, name: str | None = None,
                reason: str | None = None) -> None:
        """What the Promote button does, callable from code and tests; the outcome is in ``status``."""
        self._promote_variant.value = variant  # suggests the variant's registry name
        if name is not None:
            self._prompt_name.value = name
        self._alias.value, self._reason.value = alias, reason or ""
        self._promote_button.click()

    def _suggest_name(self) -> None:
        """The name field shows where the selected variant would be promoted (empty: an unnamed draft)."""
        self._prompt_name.value = self.comparison.promote_name(int(self._promote_variant.value)) or ""

    def _promote(self) -> None:
        try:
            kwargs: dict[str, Any] = {"reason": self._reason.value or None}
            name = self._prompt_name.value.strip()
            if name and name != self.comparison.promote_name(int(self._promote_variant.value)):
                kwargs["name"] = name
            elif not name and not self.comparison.promote_name(int(self._promote_variant.value)):
                raise ValueError("this variant is an inline template: type a prompt name in the name field first")
            version = self.comparison.promote(int(self._promote_variant.value), alias=self._alias.value.strip(),
                                              **kwargs)
        except Exception as err:  # noqa: BLE001
            self.status = f"<span class='err'>{html.escape(str(err))}</span>"
            return
        self.status = (f"promoted [{self._promote_variant.value}] → "
                       f"{html.escape(str(getattr(version, 'name', '')))}@{getattr(version, 'version', '?')} "
                       f"as {html.escape(self._alias.value)}")

    def refresh_header(self) -> None:
        self.refresh(header=True)

    # -- saved notebooks -----------------------------------------------------------------------------
    def static_html(self) -> str:
        """The header and the current page as plain HTML (no widget, no script): the fallback a saved notebook
        keeps next to the widget view, shown by nbconvert, nbviewer and GitHub."""
        more = (f" · page {self.page + 1} of {self.n_pages}; run the notebook for the interactive grid"
                if self.n_pages > 1 else "")
        return (f"{_CSS}<div class='llmops-cmp'>{self._header_html or self._render_header()}"
                f"<p class='meta'>{self.n_visible} of {self.n_rows} rows{more}</p>{self.render_rows()}</div>")

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(**kwargs) or {})
        bundle["text/plain"] = repr(self.comparison)
        bundle["text/html"] = self.static_html()
        return bundle
