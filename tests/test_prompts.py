import pytest

from llmops_lab.exceptions import TemplateError
from llmops_lab.core.templates import PromptTemplate, check_name


def test_render_and_variables():
    t = PromptTemplate("Summarize {{ article }} in {{ n }} words{% for x in items %}{{ x }}{% endfor %}")
    assert t.variables == {"article", "n", "items"}
    assert t.render({"article": "A", "n": 3, "items": [1, 2], "unused": 0}) == "Summarize A in 3 words12"


def test_missing_variable_is_one_line_and_names_it():
    with pytest.raises(TemplateError) as err:
        PromptTemplate("Hello {{ who }} and {{ other }}").render({"who": "x"})
    message = str(err.value)
    assert "other" in message and "\n" not in message and "who" not in message.split("pass")[0]


def test_code_braces_and_dollars_are_plain_text():
    text = "def f():\n    return {'a': 1}  # costs $5"
    assert PromptTemplate(text).render({}) == text


def test_syntax_error_is_template_error():
    with pytest.raises(TemplateError, match="syntax error on line 1"):
        PromptTemplate("Hello {{ who ").render({"who": 1})


def test_sandbox_blocks_python_internals():
    t = PromptTemplate("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError, match="sandbox|unsafe|template"):
        t.render({})


def test_empty_template_is_refused():
    with pytest.raises(TemplateError, match="empty"):
        PromptTemplate("   \n").render({})


def test_auto_name_is_stable_and_text_dependent():
    assert PromptTemplate("a {{ b }}").auto_name() == PromptTemplate("a {{ b }}").auto_name()
    assert PromptTemplate("a {{ b }}").auto_name() != PromptTemplate("a {{ c }}").auto_name()
    assert check_name(PromptTemplate("x").auto_name())


@pytest.mark.parametrize("bad", ["", "has space", "slash/name", "x" * 101, "-lead"])
def test_bad_names(bad):
    with pytest.raises(TemplateError):
        check_name(bad)


def test_values_for_log_truncates():
    t = PromptTemplate("{{ a }}")
    logged = t.values_for_log({"a": "x" * 5000, "b": "not used"})
    assert set(logged) == {"a"} and len(logged["a"]) < 2100
