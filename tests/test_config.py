import pytest

from conftest import make_project
from llmops_lab.config import DEFAULT_MODEL, load_settings, validate_params
from llmops_lab.exceptions import ConfigError


def test_defaults(tmp_path):
    make_project(tmp_path)
    s = load_settings(tmp_path, environ={})
    assert s.model == DEFAULT_MODEL
    assert s.project_root == tmp_path.resolve()
    assert s.resolved_tracking_uri() == f"sqlite:///{tmp_path.resolve() / '.llmops' / 'mlflow.db'}"


def test_precedence_pyproject_then_env(tmp_path):
    make_project(tmp_path, {"pyproject.toml":
                            '[tool.llmops-lab]\nmodel = "openai:gpt-4o-mini"\ntemperature = 0.5\nmax-tokens = 99\n'
                            '[tool.llmops-lab.endpoints.vllm]\nbase_url = "http://127.0.0.1:8000/v1"\n'
                            'api_key_env = "VLLM_KEY"\n'}, settings=None)
    sub = tmp_path / "notebooks"
    sub.mkdir()
    s = load_settings(sub, environ={"LLMOPS_TEMPERATURE": "0"})
    assert s.project_root == tmp_path.resolve()  # found upwards
    assert (s.model, s.temperature, s.max_tokens) == ("openai:gpt-4o-mini", 0.0, 99)
    assert s.endpoints["vllm"]["api_key_env"] == "VLLM_KEY"


def test_mlflow_env_wins_over_default(tmp_path, monkeypatch):
    make_project(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert load_settings(tmp_path).resolved_tracking_uri() == "http://127.0.0.1:5000"


@pytest.mark.parametrize("env,match", [
    ({"LLMOPS_TEMPERATURE": "hot"}, "not a valid float"),
    ({"LLMOPS_TEMPERATURE": "3"}, "out of range"),
    ({"LLMOPS_MODEL": "gpt-4o"}, "provider:model"),
    ({"LLMOPS_MAX_RETRIES": "-1"}, "out of range"),
])
def test_bad_values_are_one_line_errors(tmp_path, env, match):
    make_project(tmp_path)
    with pytest.raises(ConfigError, match=match) as err:
        load_settings(tmp_path, environ=env)
    assert "\n" not in str(err.value)


def test_bad_toml_and_endpoint(tmp_path):
    make_project(tmp_path, settings="model = ")
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path, environ={})
    (tmp_path / "llmops.toml").write_text("[endpoints.x]\napi_key_env='K'\n")
    with pytest.raises(ConfigError, match="base_url"):
        load_settings(tmp_path, environ={})


def test_configure_is_all_or_nothing(bare_project):
    import llmops_lab

    with pytest.raises(ConfigError):
        llmops_lab.configure(temperature=0.3, max_tokens="many")
    assert llmops_lab.get_settings().temperature is None
    llmops_lab.configure(temperature="0.3", max_tokens="12")
    assert (llmops_lab.get_settings().temperature, llmops_lab.get_settings().max_tokens) == (0.3, 12)
    with pytest.raises(ConfigError, match="unknown setting 'api_key'"):
        llmops_lab.configure(api_key="sk-123")


def test_validate_params():
    assert validate_params({"temperature": "0", "max_tokens": 5.0, "seed": None}) == {"temperature": 0.0,
                                                                                       "max_tokens": 5}
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        validate_params({"temprature": 1})
    with pytest.raises(ConfigError, match="not a valid int"):
        validate_params({"max_tokens": 2.5})
    with pytest.raises(ConfigError, match="at least 1"):
        validate_params({"max_tokens": 0})
