"""The detectors, measured on the labelled corpus in tests/redaction_corpus/ (the figures docs/security.md
publishes come from benchmarks/redaction_corpus.py, which counts the same way), the regressions a scan found,
and answers masked as strictly as prompts: a key the model repeats re-cased, spaced or quoted."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from redaction_corpus import generate, scoring  # tests/ is on sys.path (conftest.py)

import llmops_lab
from llmops_lab import tracking
from llmops_lab.trust.redaction import (
    Redactor,
    mask_answer,
    mask_known,
    parse_policy,
    redact,
    redact_record,
)

POSITIVES = scoring.load("positives.jsonl")
NEGATIVES = scoring.load("negatives.jsonl")
AZURE_KEY = "3f2a9c01d4e5f60718293a4b5c6d7e8f"  # 32 hex, the form a scan found stored in clear
SSN = "123-45-6789"


@pytest.fixture(scope="module")
def measured() -> scoring.Score:
    redactor = Redactor(parse_policy({}))
    return scoring.score(scoring.ours(type("Uncached", (), {"redact": staticmethod(redactor._redact)})()),
                         POSITIVES, NEGATIVES)


def test_the_corpus_is_large_varied_and_what_its_generator_writes():
    assert len(POSITIVES) >= 300 and len({r["kind"] for r in POSITIVES}) >= 30 and len(NEGATIVES) >= 300
    assert {r["category"] for r in POSITIVES} == {"secret", "pii"}
    assert all(r["value"] in r["text"] for r in POSITIVES)
    import random

    rng = random.Random(generate.SEED)  # committed files = the seeded generator's output (regenerate, commit)
    assert generate.positives(rng) == POSITIVES and generate.negatives(rng) == NEGATIVES


def _per_kind(score: scoring.Score) -> str:
    rows = [f"{kind}: masked {t.masked}/{t.positives}, first miss {t.missed[:1]}"
            for kind, t in sorted(score.kinds.items()) if t.masked < t.positives]
    rows += [f"negative {kind}: {texts[:2]}" for kind, texts in sorted(score.negative_hits.items())]
    return "\n".join(rows)


def test_secrets_recall_and_precision(measured):
    secret = measured.categories["secret"]
    # masked_recall: the whole labelled value is gone (stricter than a finding that touches it)
    assert secret.masked_recall >= 0.98 and secret.precision >= 0.95, _per_kind(measured)


def test_pii_recall_and_precision(measured):
    pii = measured.categories["pii"]
    assert pii.masked_recall >= 0.95 and pii.precision >= 0.9, _per_kind(measured)


def test_the_scoring_counts_misses_and_false_findings():
    """A finder that finds nothing has recall 0; one that flags every text has false findings on negatives."""
    nothing = scoring.score(lambda text: [], POSITIVES[:20], NEGATIVES[:20])
    assert nothing.categories["all"].recall == 0 and nothing.negative_hits == {}
    everything = scoring.score(lambda text: [(0, 1, "secret")], POSITIVES[:5], NEGATIVES[:5])
    assert everything.categories["secret"].false_findings >= 5 and sum(map(len, everything.negative_hits.values())) == 5


# -- the regressions a scan found -------------------------------------------------------------------------

def _single(prompt: str, output: str, variables: dict | None = None) -> dict:
    return {"id": "r1", "kind": "single", "prompt": {"name": "p", "template": prompt, "sha256": "s"},
            "messages": [{"role": "user", "content": prompt}], "variables": variables or {}, "output": output}


def test_azure_key_after_api_key_and_an_ssn_are_masked_in_a_record():
    out = redact_record(_single(f"api key: {AZURE_KEY} and SSN {SSN}", "ok"))
    assert out["messages"][0]["content"] == "api key: [API_KEY] and SSN [SSN]"
    assert AZURE_KEY not in repr(out) and SSN not in repr(out)
    assert out["redaction"]["counts"] == {"hex_key": 2, "ssn": 2}  # template and message


@pytest.mark.parametrize("text", ["ssn 000-12-3456", "ssn 666-12-3456", "ssn 900-12-3456", "ssn 123-00-4567",
                                  "ssn 123-45-0000", "isbn 978-3-16-148410-0", "date 2024-01-15"])
def test_numbers_never_issued_as_ssn_are_kept(text):
    assert redact(text) == (text, [])


def test_uk_nino_and_its_excluded_prefixes():
    assert redact("NI number QQ 12 34 56 C")[0] == "NI number QQ 12 34 56 C"  # Q is never a first letter
    assert redact("NI GB123456A")[0] == "NI GB123456A" and redact("NI AB123456C")[0] == "NI [NINO]"


def test_a_bare_key_under_a_secret_name_is_masked():
    row = {"api_key": AZURE_KEY, "DB_PASSWORD": "hunter22", "max_tokens": "512000", "token": "running", "output": "done"}
    out = redact_record({"id": "b", "kind": "batch_rows", "rows": [row]})
    assert out["rows"][0] == {"api_key": "[API_KEY]", "DB_PASSWORD": "[SECRET]", "max_tokens": "512000",
                              "token": "running", "output": "done"}  # a column of words named token is kept


# -- answers scanned as strictly as prompts -----------------------------------------------------------------

def _spaced(value: str, step: int = 4) -> str:
    return " ".join(value[i:i + step] for i in range(0, len(value), step))


ALTERED = [AZURE_KEY.upper(), _spaced(AZURE_KEY.upper()), f"`{AZURE_KEY}`", f"```\n{_spaced(AZURE_KEY, 8)}\n```",
           f'"{AZURE_KEY[:16]}" "{AZURE_KEY[16:]}"', AZURE_KEY[:10] + "\u200b" + AZURE_KEY[10:],
           "\n".join(_spaced(AZURE_KEY.upper(), 16).split())]


@pytest.mark.parametrize("answer", ALTERED)
def test_a_prompt_secret_repeated_in_another_form_is_masked_in_the_answer(answer):
    out = redact_record(_single(f"api key: {AZURE_KEY}", f"Here it is: {answer} (done)"))
    assert out["output"].startswith("Here it is: ") and out["output"].endswith(" (done)")
    assert "[API_KEY]" in out["output"] and not any(c in out["output"].lower() for c in (AZURE_KEY[:8], "3f2a"))
    assert out["redaction"]["counts"]["altered_secret"] >= 1


def test_mask_known_maps_the_folded_view_back_to_the_original_span():
    known = {AZURE_KEY: "[API_KEY]"}
    assert mask_known(f"a {_spaced(AZURE_KEY.upper())} b", known) == ("a [API_KEY] b", 1)
    assert mask_known("nothing here", known) == ("nothing here", 0)
    assert mask_known(f"x {AZURE_KEY[:20]}", known) == (f"x {AZURE_KEY[:20]}", 0)  # a part is not the secret
    assert mask_known("ABC DEF", {}) == ("ABC DEF", 0)


def test_short_secrets_are_not_searched_for_elsewhere():
    out = redact_record(_single("password: abc123", "I said ABC 123 today"))  # 6 characters: too common
    assert out["messages"][0]["content"] == "password: [SECRET]" and out["output"] == "I said ABC 123 today"


def test_hash_style_gives_the_altered_form_the_same_token(monkeypatch):
    from types import SimpleNamespace

    monkeypatch.setenv("LLMOPS_REDACTION_KEY", "k")
    out = redact_record(_single(f"api key: {AZURE_KEY}", AZURE_KEY.upper()), SimpleNamespace(redaction={"style": "hash"}))
    token = out["messages"][0]["content"].removeprefix("api key: ")
    assert token.startswith("[API_KEY:") and out["output"] == token  # joinable: the same value, the same token


def test_an_answer_is_scanned_with_the_same_detectors():
    fresh = "sk-proj-" + "Zq8" * 10  # in no input: the ordinary detectors find it in the output
    out = redact_record(_single("summarise the ticket", f"The ticket quotes {fresh} and SSN {SSN}."))
    assert out["output"] == "The ticket quotes [OPENAI_KEY] and SSN [SSN]."


def test_mask_answer_uses_the_secrets_it_was_asked_about():
    assert mask_answer(f"sure: {_spaced(AZURE_KEY.upper())}", [f"api key: {AZURE_KEY}"]) == "sure: [API_KEY]"
    assert mask_answer(f"sure: {_spaced(AZURE_KEY.upper())}") == f"sure: {_spaced(AZURE_KEY.upper())}"  # unknown
    assert mask_answer(None) is None


# -- end to end: the stored run, trace, cache and spool hold no form of the key --------------------------------

def _leaks(root: Path, key: str) -> list[str]:
    """Files under ``root`` holding ``key`` in any case, also with whitespace removed from the file's bytes."""
    needle = key.lower().encode()
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes().lower()
        if needle in data or needle in b"".join(data.split()):
            hits.append(str(path.relative_to(root)))
    return hits


def test_no_form_of_the_key_is_stored_after_an_echoing_run(fake, project):
    def responder(req):  # repeats the key of its prompt, re-cased, spaced and in backticks
        if AZURE_KEY not in req["messages"][-1]["content"]:
            return "nothing to store"
        return f"Stored. Your key is {_spaced(AZURE_KEY.upper())}, or `{AZURE_KEY.upper()}`; ssn {SSN}."

    fake.responder = responder
    r = llmops_lab.run("Remember my api key: {{ key }} please", {"key": AZURE_KEY}, name="echo-key")
    assert _spaced(AZURE_KEY.upper()) in r.text  # the caller gets the real answer
    df = pd.DataFrame({"note": [f"api key: {AZURE_KEY}", "nothing secret"], "api_key": [AZURE_KEY, "n/a"]})
    results = llmops_lab.batch("{{ note }} / {{ api_key }}", df, name="echo-key-batch", progress=False)
    assert results["error"].isna().all()
    assert tracking.flush(60) == 0
    assert (project / ".llmops" / "cache.db").exists()
    assert _leaks(project, AZURE_KEY) == []
    assert all(SSN.encode() not in p.read_bytes() for p in project.rglob("*") if p.is_file())


def test_the_leak_scan_sees_a_key_in_another_form(tmp_path):
    (tmp_path / "a.txt").write_text(f"x {_spaced(AZURE_KEY.upper())} y")
    assert _leaks(tmp_path, AZURE_KEY) == ["a.txt"]


# -- hand-written, not from the generator: written after the detectors were tuned on the corpus, as a check on
# text they had not seen. First score: 25 of 27 masked, 0 of 20 flagged (misses: "key1 <hex>" and "Passwort:",
# since fixed; docs/security.md).

HANDWRITTEN = [
    ("Hey, can you debug this? OPENAI_KEY: sk-proj-7hQ2mZpL9xR4vN8kT3wY6bJ1cF5dG0aE", "sk-proj-7hQ2mZpL9xR4vN8kT3wY6bJ1cF5dG0aE"),
    ("conn = psycopg2.connect(host='db', user='etl', password='Spr1ng!2024')", "Spr1ng!2024"),
    ("DATABASE_PASSWORD: 'w8$kLp2#Qz'", "w8$kLp2#Qz"),
    ("az cognitiveservices account keys list returned key1 9b1c7e3f2a6d4e8f0a1b2c3d4e5f6a7b",
     "9b1c7e3f2a6d4e8f0a1b2c3d4e5f6a7b"),
    ("headers = {'Authorization': 'Bearer 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'}", "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"),
    ("My social is 078-05-1120, please update", "078-05-1120"),
    ("Contact: +49 151 23456789 (mobile)", "+49 151 23456789"),
    ("Ruf mich an: 0151 23456789", "0151 23456789"),
    ("Mon numéro : 06 12 34 56 78", "06 12 34 56 78"),
    ("wire to GB33BUKB20201555555555 today", "GB33BUKB20201555555555"),
    ("her email is jane_doe-99@sub.example.io.", "jane_doe-99@sub.example.io"),
    ("card: 4012 8888 8888 1881", "4012 8888 8888 1881"),
    ("server at 2001:0db8:85a3:0000:0000:8a2e:0370:7334 is down", "2001:0db8:85a3:0000:0000:8a2e:0370:7334"),
    ("AWS creds: AKIAQWERTYUIOP234567 / aws secret = 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", "AKIAQWERTYUIOP234567"),
    ("npmrc: //registry.npmjs.org/:_authToken=npm_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78",
     "npm_Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78"),
    ("slack: xoxp-123456789012-123456789012-123456789012-abcdef0123456789abcdef0123456789",
     "xoxp-123456789012-123456789012-123456789012-abcdef0123456789abcdef0123456789"),
    ('export ANTHROPIC_API_KEY="sk-ant-api03-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789-_aBcDeFgHiJkLmNoPqRsTuVwXyZAA"',
     "sk-ant-api03-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"),
    ("mongodb://root:example@mongo:27017/", "example"),
    ("SMTP_PASS=mailpass123", "mailpass123"),
    ("The wifi passphrase: orange-tiger-42", "orange-tiger-42"),
    ("ni no. JG 10 37 54 A", "JG 10 37 54 A"),
    ("phone (415) 555-2671 x12", "555-2671"),
    (("pk: -----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oDQUsu4qVG1eoAoGCCqGSM49\n"
      "-----END EC PRIVATE KEY-----"), "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oDQUsu4qVG1eoAoGCCqGSM49"),
    ("sendgrid: 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",
     "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"),
    ("use token ghp_16C7e42F292c6912E7710c838347Ae178B4a in CI", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("Passwort: Sommer2024!", "Sommer2024!"),
    ("api_secret=9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
]
HANDWRITTEN_NEGATIVES = [
    "Meeting moved to 14:30 on 2025-03-04; bring the Q3 report (v2.1.0).",
    "The secret sauce is good data; the key insight: 3 of 5 runs improved.",
    "Use `api_key=os.getenv('OPENAI_API_KEY')` rather than hardcoding it.",
    "hash: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "commit 4b825dc642cb6eb9a060e54bf8d69288fbee4904 (HEAD -> main)",
    "Price: $1,299.00 (was $1,499.00), SKU 8842-1193-77",
    "See RFC 7519 section 4.1.3 and ISO 8601 timestamps like 2024-06-01T12:00:00Z.",
    "password_reset_token_ttl = 3600", "Enter your password: ", "token limit reached: 4096/4096",
    "id: 5f9c3b2a-8e7d-4c1b-9a6f-0e2d3c4b5a69", "Total: 1 234 567 rows processed in 12.5 s",
    "Call me maybe, at noon!", "key=value pairs separated by &",
    "the model printed 0.7314 0.2201 0.0485 as probabilities", "Build 20240601.3 deployed to eu-west-1",
    "route 66, exit 42, mile 101", "user@localhost is not a valid address here", "secret: true",
    "#ff5733 and rgb(255, 87, 51)",
    "token: running, lemma: run, pos: VERB",  # added with the rule for one-case words after token:
]


@pytest.mark.parametrize("text,value", HANDWRITTEN, ids=[v[:16] for _, v in HANDWRITTEN])
def test_handwritten_positives_are_masked(text, value):
    assert value not in redact(text)[0]


@pytest.mark.parametrize("text", HANDWRITTEN_NEGATIVES)
def test_handwritten_negatives_are_kept(text):
    assert redact(text) == (text, [])


def test_a_cell_never_displays_the_prompt_key_repeated_in_another_form(shell, fake, capsys):
    fake.responder = lambda req: f"Noted: {_spaced(AZURE_KEY.upper())}."
    shell.user_ns["k"] = AZURE_KEY
    assert shell.run_cell("%%llm --format text --out r\nRemember api key: {{ k }}").success
    shown = capsys.readouterr().out
    assert "Noted: [API_KEY]." in shown and AZURE_KEY not in "".join(shown.lower().split())
    assert shell.user_ns["r"].text == f"Noted: {_spaced(AZURE_KEY.upper())}."  # the variable keeps the real answer
