"""The comparison grid without a kernel: comm stubbed as ipywidgets' own tests do; state in traitlets drives
what is rendered; buttons call the core. Tests go through the public state (traitlets), the public rendering
(``render_rows``, ``static_html``, ``render_cell``) and the controls a user sees, found by their label."""
import ipywidgets as W
import pytest

from llmops_lab.evaluation.compare import Comparison, synthetic


def walk(w):
    yield w
    for child in getattr(w, "children", ()):
        yield from walk(child)


def control(grid, label):
    """The control the user finds by ``label`` (its description, or its placeholder when it has none)."""
    found = [w for w in walk(grid) if isinstance(w, W.DOMWidget) and label in
             (getattr(w, "description", None), getattr(w, "placeholder", None))]
    assert len(found) == 1, f"{len(found)} controls labelled {label!r}"
    return found[0]


def header_of(grid):
    """The header: what ``static_html`` puts before the rows of the current page."""
    html = grid.static_html()
    return html[:html.index(grid.render_rows())]


def shown(grid):
    """Everything the grid displays as HTML (header, rows, page label, status), as the view has it now."""
    return "\n".join(w.value for w in walk(grid) if isinstance(w, W.HTML))


@pytest.fixture(autouse=True)
def dummy_comm():
    from ipywidgets.widgets.tests.utils import setup_test_comm, teardown_test_comm

    setup_test_comm()
    yield
    teardown_test_comm()


@pytest.fixture
def cmp():
    return synthetic(120, 3)


def test_grid_pages_and_renders_only_the_page(cmp):
    grid = cmp.widget(page_size=50)
    assert (grid.n_rows, grid.n_visible, grid.n_pages, grid.page) == (120, 120, 3, 0)
    assert grid.visible_rows == list(range(50))
    rows = grid.render_rows()
    assert rows.count("<tr>") == 50 and "#49" in rows and "#50" not in rows
    control(grid, "▶").click()
    assert grid.page == 1 and grid.visible_rows[0] == 50
    grid.page = 2
    assert grid.visible_rows == list(range(100, 120)) and "page 3/3" in shown(grid)
    control(grid, "▶").click()
    assert grid.page == 2  # stays on the last page
    grid.page_size = 200
    assert grid.n_pages == 1 and grid.page == 0 and len(grid.visible_rows) == 120


def test_filters_and_sorting_follow_the_state(cmp):
    grid = cmp.widget()
    grid.page = 1
    grid.only_diff = True  # the checkbox is linked to the trait, and a filter goes back to page 0
    assert control(grid, "only rows that differ").value is True and grid.page == 0
    base = cmp.results[0]["output"]
    expected = [i for i in range(cmp.n_rows) if any(r["output"][i] != base[i] for r in cmp.results[1:])]
    assert grid.n_visible == len(expected) and grid.visible_rows == expected[:50]
    grid.only_diff = False
    control(grid, "only failures").value = True
    failing = [i for i in range(cmp.n_rows)
               if any(r["error"].notna()[i] or r["contains_keyword"][i] == 0 for r in cmp.results)]
    assert grid.only_failures and grid.n_visible == len(failing)
    grid.only_failures = False
    grid.sort_by, grid.sort_desc = "1:latency_ms", True
    latencies = cmp.results[1]["latency_ms"]
    shown = [latencies[i] for i in grid.visible_rows]
    assert shown == sorted(shown, reverse=True) and shown[0] == latencies.max()


def test_cells_show_word_diff_scores_and_header_aggregates(cmp):
    grid = cmp.widget(page_size=10)
    html = grid.render_rows()
    # row 1: variant 1 writes a word more than the baseline; row 2: variant 2 two words fewer
    assert "<ins>" in html and "<del>" in html
    assert "<ins>" in grid.render_cell(1, 1) and "<del>" not in grid.render_cell(1, 1)
    assert "<del>" in grid.render_cell(2, 2) and "<ins>" not in grid.render_cell(2, 2)
    assert "contains_keyword=" in html and " ms · " in html and " tok · $" in html
    assert "error: timeout" in html  # row 0 failed in every variant
    header = header_of(grid)
    assert "(baseline)" in header and "W/T/L vs baseline (contains_keyword)" in header
    s = cmp.summary()
    assert f"{s.iloc[1]['wins']}/{s.iloc[1]['ties']}/{s.iloc[1]['losses']}" in header
    assert "p50 latency" in header and "total cost" in header


def test_rating_buttons_call_the_core_and_update_aggregates(cmp):
    grid = cmp.widget()
    grid.rate(3, 1, thumbs=True, score=4, comment="good")
    assert cmp.ratings[(3, 1)]["thumbs"] is True and cmp.ratings[(3, 1)]["score"] == 4
    assert cmp.ratings[(3, 1)]["logged"] is False  # no run: kept in-process (with runs: MLflow feedback)
    assert "human 👍 good / 👎 bad" in shown(grid) and "👍 good · 4/5" in shown(grid)  # the view was refreshed
    control(grid, "row").value, control(grid, "variant").value = 5, 2
    control(grid, "👎 bad").click()
    assert cmp.summary().loc["prompt@3", "human_down"] == 1 and "rated row 5" in grid.status


def test_promote_button_calls_core(cmp, monkeypatch):
    calls = []

    def fake_promote(variant, alias="production", **kw):
        calls.append((variant, alias, kw))
        return type("V", (), {"name": "prompt", "version": 7})()

    monkeypatch.setattr(cmp, "promote", fake_promote)
    grid = cmp.widget()
    control(grid, "promote").value = 2
    control(grid, "alias").value = "staging"
    control(grid, "why (logged)").value = "best"
    control(grid, "Promote").click()
    assert calls == [(2, "staging", {"reason": "best"})] and "prompt@7 as staging" in grid.status
    monkeypatch.setattr(cmp, "promote", lambda *a, **k: (_ for _ in ()).throw(ValueError("no name")))
    control(grid, "Promote").click()
    assert "no name" in grid.status


def test_promote_from_code_does_what_the_button_does(cmp, monkeypatch):
    calls = []
    monkeypatch.setattr(cmp, "promote", lambda variant, alias="production", **kw: calls.append((variant, alias, kw))
                        or type("V", (), {"name": "headline", "version": 3})())
    grid = cmp.widget()
    grid.promote(1, "staging", name="headline", reason="shorter")
    assert calls == [(1, "staging", {"reason": "shorter", "name": "headline"})]
    assert "promoted [1] → headline@3 as staging" in grid.status


def test_state_is_synced_traitlets(cmp):
    grid = cmp.widget()
    state = grid.get_state()
    for key in ("page", "page_size", "only_diff", "only_failures", "sort_by", "sort_desc", "visible_rows",
                "n_visible"):
        assert key in state
    assert isinstance(cmp, Comparison) and cmp.widget() is grid


def _worse(n=60):
    cmp = synthetic(n, 2)
    ok = cmp.results[0]["error"].isna() & cmp.results[1]["error"].isna()
    cmp.results[0].loc[ok, "contains_keyword"] = 1.0
    cmp.results[1].loc[ok, "contains_keyword"] = 0.0
    return cmp


def test_significance_is_shown_in_the_direction_of_the_effect():
    cmp = _worse()
    s = cmp.summary()
    assert bool(s.iloc[1]["significant"]) and s.iloc[1]["direction"] == "worse" and s.iloc[1]["losses"] > 0
    header = header_of(cmp.widget())
    assert "worse than baseline" in header and "class='worse'" in header
    assert "better" not in header.replace(".llmops-cmp .better", "")
    same = synthetic(40, 3)
    assert "no significant difference" in header_of(same.widget())
    assert list(same.summary()["direction"])[1:] == ["no difference", "no difference"]


def test_header_names_each_prompt_and_all_cached_latency_is_not_zero(cmp):
    header = header_of(cmp.widget())
    assert all(v.template in header for v in cmp.variants)  # which prompt is which
    assert "temperature=0" in header and "{'temperature'" not in header
    assert "0 ms" not in header and "all 120 rows cached" in header
    assert cmp.summary()["prompt"].iloc[0] == "Summarize v1: {{ text }}"


def test_static_html_fallback_in_the_mimebundle(cmp, monkeypatch):
    from ipywidgets import Widget
    from ipywidgets.widgets.tests.utils import _widget_attrs

    monkeypatch.setattr(Widget, "_repr_mimebundle_", _widget_attrs["_repr_mimebundle_"])  # the real one
    grid = cmp.widget(page_size=10)
    bundle = grid._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == grid.model_id
    html = bundle["text/html"]
    assert "<table" in html and "W/T/L vs baseline" in html and "#9" in html and "#10" not in html
    assert "page 1 of 12" in html and bundle["text/plain"].startswith("Comparison(3 variants x 120 rows")
    assert cmp._repr_html_() == html


def test_controls_have_text_labels_and_tooltips(cmp):
    grid = cmp.widget()
    assert isinstance(control(grid, "👍 good"), W.Button) and isinstance(control(grid, "👎 bad"), W.Button)
    assert control(grid, "descending").layout.width == "auto"
    controls = [w for w in walk(grid) if isinstance(w, (W.Button, W.ToggleButton, W.Checkbox, W.Dropdown,
                                                            W.Text, W.BoundedIntText))]
    assert len(controls) >= 14 and all(w.tooltip for w in controls), [w for w in controls if not w.tooltip]
    rows = [w for w in grid.children if isinstance(w, W.HBox)]
    assert all(r.layout.flex_flow == "row wrap" for r in rows)


def test_promote_needs_a_name_for_an_unnamed_inline_draft(monkeypatch):
    from llmops_lab.evaluation import compare as cm

    cmp = synthetic(10, 2)
    for v in cmp.variants:
        v.prompt_name, v.prompt_version = cm.DRAFTS_NAME, None
    cmp.name = cm.DRAFTS_NAME
    calls = []
    monkeypatch.setattr(cmp, "promote", lambda variant, alias="production", **kw: calls.append((variant, kw)) or
                        type("V", (), {"name": kw.get("name"), "version": 1})())
    grid = cmp.widget()
    control(grid, "promote").value = 1
    assert control(grid, "name").value == ""  # nothing to suggest: the user names it
    control(grid, "Promote").click()
    assert not calls and "type a prompt name" in grid.status
    control(grid, "name").value = "news-brief"
    control(grid, "Promote").click()
    assert calls == [(1, {"reason": None, "name": "news-brief"})] and "news-brief@1" in grid.status
