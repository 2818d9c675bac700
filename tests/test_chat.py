"""Conversations across cells (issue #18, item 2): a real IPython shell, the fake OpenAI server (its recorded
request bodies are what was sent) and a real sqlite MLflow store read back with MlflowClient."""
import pytest

import llmops_lab
from conftest import mlflow_client
from llmops_lab.core import conversation as chats

KEY = "sk-proj-" + "Q7vLm2Xc9RtB4nWz8KpD1sYh6GfJ3aEu"  # an OpenAI-shaped key


@pytest.fixture(autouse=True)
def no_conversations():
    """Each test starts with a kernel that holds no conversation (they live in the process, like a kernel's)."""
    chats._KERNEL.clear()
    yield
    chats._KERNEL.clear()


def cell(shell, code):
    result = shell.run_cell(code)
    assert result.success, result.error_in_exec or result.error_before_exec
    return result


def failed_cell(shell, code, capsys):
    capsys.readouterr()
    result = shell.run_cell(code)
    assert not result.success
    return capsys.readouterr().err.strip()


def chat_runs(conversation_name):
    client = mlflow_client()
    exp = client.get_experiment_by_name("llmops-lab")
    runs = client.search_runs([exp.experiment_id], f"tags.`llmops.conversation_name` = '{conversation_name}'")
    return sorted(runs, key=lambda r: int(r.data.tags["llmops.turn"]))


def test_second_turn_carries_system_and_first_turn(shell, fake):
    shell.user_ns["city"] = "Paris"
    cell(shell, '%%llm --chat trip --system "Be brief." --no-stream\nI am going to {{ city }}.')
    cell(shell, "%%llm --chat trip --no-stream --out r\nWhat should I see?")
    assert fake.requests[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am going to Paris."},
        {"role": "assistant", "content": "echo: I am going to Paris."},
        {"role": "user", "content": "What should I see?"}]
    assert shell.user_ns["r"].text == "echo: What should I see?"
    cell(shell, "%%llm --no-stream\nno chat here")  # a cell without --chat sends only itself
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "no chat here"}]


def test_turns_are_runs_sharing_the_conversation_tag_and_a_session_trace(shell, fake):
    for text in ("one", "two", "three"):
        cell(shell, f"%%llm --chat notes --no-stream\n{text}")
    assert llmops_lab.flush() == 0
    runs = chat_runs("notes")
    conversation = chats.get("notes")
    assert [r.data.tags["llmops.turn"] for r in runs] == ["1", "2", "3"]
    assert {r.data.tags["llmops.conversation"] for r in runs} == {conversation.id}
    client = mlflow_client()
    traces = client.search_traces(locations=[runs[0].info.experiment_id], run_id=runs[2].info.run_id)
    assert len(traces) == 1
    metadata = traces[0].info.trace_metadata
    assert metadata["mlflow.trace.session"] == conversation.id and metadata["mlflow.trace.user"]
    # MLflow's own session filter finds the three turns
    session = client.search_traces(locations=[runs[0].info.experiment_id],
                                   filter_string=f"metadata.`mlflow.trace.session` = '{conversation.id}'")
    assert len(session) == 3


def test_streamed_turn_records_the_assistant_message(shell, fake):
    fake.chunk_chars = 3
    cell(shell, "%%llm --chat s --stream\nfirst question")
    cell(shell, "%%llm --chat s --stream\nsecond")
    assert fake.requests[-1]["stream"] is True
    assert fake.requests[-1]["messages"][1] == {"role": "assistant", "content": "echo: first question"}
    assert [t.assistant for t in chats.get("s").turns] == ["echo: first question", "echo: second"]


def test_list_transcript_reset_and_fork(shell, fake, capsys):
    cell(shell, "%%llm --chat a --no-stream\nhello")
    cell(shell, "%%llm --chat b --no-stream\nbonjour")
    cell(shell, "table = %llm chat")
    table = shell.user_ns["table"]
    assert list(table["name"]) == ["a", "b"] and list(table["turns"]) == [1, 1]

    capsys.readouterr()
    cell(shell, "%llm chat a")
    out = capsys.readouterr().out
    assert "**user (1):** hello" in out and "**assistant (1):** echo: hello" in out

    old_id = chats.get("a").id
    cell(shell, "%llm chat a --fork a2")
    cell(shell, "%llm chat a --reset")
    assert len(chats.get("a")) == 0 and chats.get("a").id != old_id
    cell(shell, "%%llm --chat a --no-stream\nagain")
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "again"}]
    cell(shell, "%%llm --chat a2 --no-stream\nforked")
    assert [m["content"] for m in fake.requests[-1]["messages"]] == ["hello", "echo: hello", "forked"]


def test_transcript_masks_a_secret_but_the_kernel_keeps_it(shell, fake, capsys):
    shell.user_ns["key"] = KEY
    cell(shell, "%%llm --chat k --no-stream\nmy key is {{ key }}")
    assert KEY in chats.get("k").turns[0].user  # the in-kernel history is what the user typed
    capsys.readouterr()
    cell(shell, "%llm chat k")
    out = capsys.readouterr().out
    assert KEY not in out and "[OPENAI_KEY]" in out


def test_resume_in_a_new_shell_rebuilds_the_turns_in_order(shell, fake, capsys):
    shell.user_ns["key"] = KEY
    cell(shell, '%%llm --chat r --system "Answer in French." --no-stream\nfirst')
    cell(shell, "%%llm --chat r --no-stream\nsecond, my key is {{ key }}")
    cell(shell, "%%llm --chat r --no-stream\nthird")
    assert llmops_lab.flush() == 0

    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.clear_instance()  # a restarted kernel: a new shell, no conversations in memory
    chats._KERNEL.clear()
    new = InteractiveShell.instance()
    new.run_line_magic("load_ext", "llmops_lab")
    assert "no conversation 'r' in this kernel" in failed_cell(new, "%llm chat r", capsys)
    cell(new, "%llm chat r --resume")
    out = capsys.readouterr().out
    assert "values masked when the turns were logged stay masked" in out
    resumed = chats.get("r")
    assert [t.number for t in resumed.turns] == [1, 2, 3]
    assert [t.user for t in resumed.turns] == ["first", "second, my key is [OPENAI_KEY]", "third"]
    assert resumed.system == "Answer in French." and resumed.model == "fake:test-model"
    cell(new, "%%llm --chat r --no-stream\nfourth")
    sent = fake.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert sent[1:3] == [{"role": "user", "content": "first"}, {"role": "assistant", "content": "echo: first"}]
    assert llmops_lab.flush() == 0
    runs = [r for r in chat_runs("r") if r.data.tags["llmops.conversation"] == resumed.id]
    assert [r.data.tags["llmops.turn"] for r in runs] == ["1", "2", "3", "4"]


def test_resume_a_fork_brings_back_the_copied_turns(shell, fake):
    cell(shell, "%%llm --chat base --no-stream\nfrom base")
    cell(shell, "%llm chat base --fork branch")
    cell(shell, "%%llm --chat base --no-stream\nbase only")  # after the fork: not the branch's
    cell(shell, "%%llm --chat branch --no-stream\nfrom branch")
    chats._KERNEL.clear()
    resumed = llmops_lab.Conversation.resume("branch")
    assert [t.user for t in resumed.turns] == ["from base", "from branch"]


def test_context_guard_drops_the_oldest_turns_with_a_note(shell, fake, capsys):
    llmops_lab.configure(chat_max_chars=120)  # a turn here is 31 + 37 characters: two turns and a question fit
    questions = [f"question {i} " + "x" * 20 for i in range(4)]
    for question in questions:
        capsys.readouterr()
        cell(shell, f"%%llm --chat long --no-stream --out r\n{question}")
    sent = fake.requests[-1]["messages"]
    assert [m["content"] for m in sent] == [questions[2], f"echo: {questions[2]}", questions[3]]
    note = shell.user_ns["r"].note
    assert note and "the oldest 2 turn(s) were not sent" in note and note in capsys.readouterr().out
    assert len(chats.get("long")) == 4  # the kernel keeps every turn
    assert llmops_lab.flush() == 0
    assert [r.data.tags.get("llmops.turns_dropped") for r in chat_runs("long")] == [None, None, "1", "2"]


@pytest.mark.parametrize("code, message", [
    ("%%llm --chat 'bad name'\nhi", "conversation name 'bad name' is not valid"),
    ("%%llm --chat c --dataset df\nhi", "--chat continues one conversation, --dataset runs a batch"),
    ("%llm chat nobody", "no conversation 'nobody' in this kernel"),
    ("%llm chat --reset", "need a conversation name"),
    ("%llm chat x --reset --resume", "not allowed with argument"),
    ("%llm chat ghost --resume", "no logged turns of conversation 'ghost'"),
])
def test_user_errors_are_one_line(shell, fake, capsys, code, message):
    err = failed_cell(shell, code, capsys)
    assert message in err and len(err.splitlines()) == 1, err


def test_python_conversation_send(project, fake):
    chat = llmops_lab.Conversation("py", system="Be brief.")
    assert chat.send("Hi {{ who }}", {"who": "Ada"}, temperature=0).text == "echo: Hi Ada"
    chat.send("And you?")
    assert [m["role"] for m in fake.requests[-1]["messages"]] == ["system", "user", "assistant", "user"]
    assert chats.get("py") is chat and len(chat) == 2
    with pytest.raises(llmops_lab.ConfigError, match="send\\(\\) makes one call"):
        chat.send("x", scorers=["exact:a"])


def test_a_failed_or_interrupted_turn_adds_nothing(shell, fake, capsys):
    from test_stream import interrupt_mid_stream, story

    cell(shell, "%%llm --chat f --no-stream\nfirst")
    fake.fail_next("500", 3, retry_after=0)  # max_retries=2: the turn fails
    assert "HTTP 500" in failed_cell(shell, "%%llm --chat f --no-stream\nlost", capsys)
    fake.responder, fake.chunk_delay_ms = story, 50
    with interrupt_mid_stream(fake):
        assert not shell.run_cell("%%llm --chat f --stream\nstopped").success
    fake.responder, fake.chunk_delay_ms = None, 0
    assert [t.user for t in chats.get("f").turns] == ["first"]
    cell(shell, "%%llm --chat f --no-stream\nsecond")
    assert [m["content"] for m in fake.requests[-1]["messages"]] == ["first", "echo: first", "second"]
    assert llmops_lab.flush() == 0
    statuses = [(r.data.tags["llmops.turn"], r.info.status) for r in chat_runs("f")]
    assert sorted(statuses) == [("1", "FINISHED"), ("2", "FAILED"), ("2", "FINISHED"), ("2", "KILLED")]
    chats._KERNEL.clear()
    assert [t.user for t in chats.resume("f").turns] == ["first", "second"]  # only answered turns come back


def test_a_python_conversation_continues_in_a_cell_and_fork_never_overwrites(shell, fake, capsys):
    chat = llmops_lab.Conversation("mixed", system="Be brief.")
    chat.send("from python")
    cell(shell, "%%llm --chat mixed --no-stream\nfrom a cell")
    assert [m["content"] for m in fake.requests[-1]["messages"]] == [
        "Be brief.", "from python", "echo: from python", "from a cell"]
    assert len(chat) == 2
    llmops_lab.Conversation("taken")
    assert "a conversation 'taken' exists" in failed_cell(shell, "%llm chat mixed --fork taken", capsys)


# -- a conversation with structured output ---------------------------------------------------------------

def _answers(*texts):
    queue = list(texts)
    return lambda req: queue.pop(0) if len(queue) > 1 else queue[0]


def test_chat_with_schema_carries_the_validated_json_as_the_assistant_turn(shell, fake, capsys):
    import pydantic

    class Person(pydantic.BaseModel):
        name: str
        age: int

    shell.user_ns["Person"] = Person
    # turn 1 answers wrong first (retried with the error), turn 2 right away, turn 3 never conforms
    fake.responder = _answers('{"name": "Ada", "age": "old"}', '{"name": "Ada", "age": 36}',
                              '{"name": "Ada", "age": 37}', '{"name": "Ada"}')
    cell(shell, "%%llm --chat people --schema Person --out p\nInvent a person.")
    p = shell.user_ns["p"]
    assert p.data == Person(name="Ada", age=36) and p.schema_retries == 1
    assert fake.requests[0]["response_format"]["json_schema"]["name"] == "Person"
    cell(shell, "%%llm --chat people --schema Person --out q\nOne year later?")
    sent = fake.requests[-1]
    # the history holds the validated answer only: the rejected one and the correction stay in turn 1's run
    assert sent["messages"] == [{"role": "user", "content": "Invent a person."},
                                {"role": "assistant", "content": '{"name": "Ada", "age": 36}'},
                                {"role": "user", "content": "One year later?"}]
    assert sent["response_format"] == fake.requests[0]["response_format"] and "stream" not in sent
    assert shell.user_ns["q"].data == Person(name="Ada", age=37)
    assert [t.assistant for t in chats.get("people").turns] == ['{"name": "Ada", "age": 36}',
                                                                '{"name": "Ada", "age": 37}']
    err = failed_cell(shell, "%%llm --chat people --schema Person\nAnd his friend?", capsys)
    assert "field 'age'" in err and "Traceback" not in err
    assert len(chats.get("people")) == 2  # a turn that did not conform adds nothing
    assert llmops_lab.flush() == 0
    runs = chat_runs("people")
    assert [(r.data.tags["llmops.turn"], r.info.status) for r in runs] == [("1", "FINISHED"), ("2", "FINISHED"),
                                                                           ("3", "FAILED")]
    assert runs[0].data.params["schema"] == "Person"
    # resumed from MLflow, the conversation carries the JSON answers
    resumed = llmops_lab.Conversation.resume("people")
    assert [t.assistant for t in resumed.turns] == ['{"name": "Ada", "age": 36}', '{"name": "Ada", "age": 37}']


def test_chat_with_schema_does_not_stream(fake):
    chat = llmops_lab.Conversation("s")
    with pytest.raises(llmops_lab.ConfigError, match="does not stream"):
        chat.send("hi", schema={"type": "object"}, stream=True)
    assert fake.request_count == 0
