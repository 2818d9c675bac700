"""The package's folders are its layers (docs/architecture.md §3): a layer never imports the layers above it,
so the tree says where a change goes and no two packages import each other."""
from __future__ import annotations

from test_mlflow_adapter import PACKAGE, _imports, _modules

FRONT_ENDS = ("magics", "cli", "server", "widgets", "gateway")
ABOVE = {  # layer -> the layers it must never import (functions included)
    "core": ("evaluation", "analysis", "jobs", *FRONT_ENDS),
    "analysis": ("evaluation", "jobs", *FRONT_ENDS),
    "evaluation": ("jobs", "magics", "cli", "server"),  # widgets: Comparison displays as its grid
    "jobs": FRONT_ENDS,
    "providers": ("core", "evaluation", "analysis", "jobs", "tracking", *FRONT_ENDS),
    "trust": ("core", "evaluation", "analysis", "jobs", "tracking", *FRONT_ENDS),
    "widgets": ("evaluation", "magics", "cli", "server"),  # the grid gets a Comparison; it never imports one
    "tracking": ("evaluation", "analysis", "jobs", "providers", *FRONT_ENDS),
}
# tracking sits under the call core (core/call.py submits to its spool): from core it may use only the pure parsers
TRACKING_MAY_USE = ("llmops_lab.core.templates", "llmops_lab.core.durations")


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (PACKAGE / parts[1]).is_dir() else None


def test_no_layer_imports_the_layers_above_it():
    offenders = []
    for path in _modules():
        layer = path.relative_to(PACKAGE).parts[0]
        for name in _imports(path):
            if name.startswith("llmops_lab.") and _layer(name) in ABOVE.get(layer, ()):
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_tracking_uses_only_the_pure_parsers_of_the_core():
    offenders = [f"{path.relative_to(PACKAGE)} imports {name}"
                 for path in _modules() if path.relative_to(PACKAGE).parts[0] == "tracking"
                 for name in _imports(path)
                 if name.startswith("llmops_lab.core") and not name.startswith(TRACKING_MAY_USE)]
    assert offenders == []


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    import test_mlflow_adapter as adapter

    core = tmp_path / "core"
    core.mkdir()
    (tmp_path / "evaluation").mkdir()
    (core / "x.py").write_text("def f():\n    from llmops_lab.evaluation.batch import batch\n")
    monkeypatch.setattr(adapter, "PACKAGE", tmp_path)
    monkeypatch.setattr("test_layers.PACKAGE", tmp_path)
    monkeypatch.setattr("test_layers._modules", lambda: [core / "x.py"])
    try:
        test_no_layer_imports_the_layers_above_it()
    except AssertionError as err:
        assert "core/x.py imports llmops_lab.evaluation.batch" in str(err)
    else:
        raise AssertionError("a core module importing evaluation was not caught")


# trust's pure modules are used below the trust layer too (tracking's spool and staging, providers, config): they
# may import nothing of llmops_lab but the exceptions, so no layer reaches upwards through them.
PURE_TRUST = ("transport.py", "at_rest.py", "kdf.py")


def test_the_pure_trust_modules_import_only_the_exceptions():
    offenders = [f"trust/{path.name} imports {name}" for path in _modules()
                 if path.relative_to(PACKAGE).parts == ("trust", path.name) and path.name in PURE_TRUST
                 for name in _imports(path) if name.startswith("llmops_lab") and not name.startswith("llmops_lab.exceptions")]
    assert offenders == []
