"""Writes the labelled redaction corpus: positives.jsonl (a secret or PII value in context, the value to mask)
and negatives.jsonl (hard negatives: text that looks like a secret and must produce no finding).

Deterministic (seeded) and synthetic: every key is random characters in the provider's format, never a real
credential. Run ``python tests/redaction_corpus/generate.py`` and commit both files; the corpus test checks
that they match this script.
"""
from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
SEED = 16
PER_KIND = 10
ALNUM = string.ascii_letters + string.digits
UPPER_DIGITS = string.ascii_uppercase + string.digits
HEX = "0123456789abcdef"


def pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    digits = prefix + pick(rng, string.digits, length - len(prefix) - 1)
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return digits + str((10 - total % 10) % 10)


def iban(rng: random.Random, country: str, bban_len: int) -> str:
    bban = pick(rng, string.digits, bban_len)
    rearranged = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in rearranged)) % 97
    return f"{country}{check:02d}{bban}"


# -- positive value generators: kind -> (category, value maker, contexts with {v}) ----------------------------

def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _nino(rng: random.Random) -> str:
    first, second = "ABCEHJKLMNOPRSTWXYZ", "ABCEHJKLMNPRSTWXYZ"
    prefix = rng.choice(first) + rng.choice(second)
    while prefix in ("BG", "GB", "NK", "KN", "TN", "NT", "ZZ"):
        prefix = rng.choice(first) + rng.choice(second)
    digits = pick(rng, string.digits, 6)
    sep = rng.choice(["", " "])
    return sep.join([prefix, digits[:2], digits[2:4], digits[4:], rng.choice("ABCD")])


def _pem(rng: random.Random, label: str = "RSA PRIVATE KEY", newline: str = "\n") -> str:
    body = newline.join(base64.b64encode(rng.randbytes(48)).decode() for _ in range(4))
    return f"-----BEGIN {label}-----{newline}{body}{newline}-----END {label}-----"


def _jwt(rng: random.Random) -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    sig = base64.urlsafe_b64encode(rng.randbytes(32)).decode().rstrip("=")
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': str(rng.randint(1, 10**6)), 'iat': 1700000000})}.{sig}"


def _password(rng: random.Random) -> str:
    word = rng.choice(["Hunter", "Falcon", "Orchid", "Walrus", "Quartz", "Maple", "Tiger", "Cobalt"])
    return f"{word}{rng.randint(10, 9999)}{rng.choice('!#%&*?')}{pick(rng, ALNUM, 4)}"


POSITIVES: dict[str, tuple[str, Callable[[random.Random], str], list[str]]] = {
    "openai_key": ("secret", lambda r: f"sk-proj-{pick(r, ALNUM + '_-', 48)}", [
        "export OPENAI_API_KEY={v}", "client = OpenAI(api_key=\"{v}\")", "my key is {v}, please check it",
        '{{"openai": {{"key": "{v}"}}}}', "2024-05-01 12:00:01 DEBUG using key {v}"]),
    "openai_legacy_key": ("secret", lambda r: f"sk-{pick(r, ALNUM, 20)}T3BlbkFJ{pick(r, ALNUM, 20)}", [
        "OPENAI_API_KEY={v}", "openai.api_key = '{v}'", "the old key {v} still works"]),
    "anthropic_key": ("secret", lambda r: f"sk-ant-api03-{pick(r, ALNUM + '_-', 93)}AA", [
        "ANTHROPIC_API_KEY={v}", "anthropic.Anthropic(api_key='{v}')", "x-api-key: {v}",
        "Here is my Claude key: {v}"]),
    "aws_access_key": ("secret", lambda r: "AKIA" + pick(r, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16), [
        "aws_access_key_id = {v}", "export AWS_ACCESS_KEY_ID={v}", "Access key ID: {v}",
        '{{"AccessKeyId": "{v}", "Region": "eu-west-1"}}']),
    "aws_secret_key": ("secret", lambda r: pick(r, ALNUM + "/+", 40), [
        "aws_secret_access_key = {v}", "export AWS_SECRET_ACCESS_KEY={v}", '"SecretAccessKey": "{v}"',
        "AWS secret key: {v}"]),
    "azure_openai_key": ("secret", lambda r: pick(r, HEX, 32), [
        "api key: {v}", "AZURE_OPENAI_API_KEY={v}", "api-key: {v}", '{{"api-key": "{v}"}}',
        "Ocp-Apim-Subscription-Key: {v}", "azure openai key {v} (westeurope)", "AzureOpenAI(api_key=\"{v}\")",
        "Use the API key {v} for the deployment"]),
    "gcp_service_account": ("secret", lambda r: _pem(r, "PRIVATE KEY", "\\n"), [
        ('{{"type": "service_account", "project_id": "demo-project", "private_key": "{v}", '
         '"token_uri": "https://oauth2.googleapis.com/token"}}'),
        '"private_key": "{v}",', "GOOGLE_PRIVATE_KEY=\"{v}\""]),
    "google_api_key": ("secret", lambda r: "AIza" + pick(r, ALNUM + "_-", 35), [
        "GOOGLE_API_KEY={v}", "https://maps.googleapis.com/maps/api/geocode/json?key={v}",
        "genai.configure(api_key=\"{v}\")", "gemini key {v}"]),
    "github_classic_token": ("secret", lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + pick(r, ALNUM, 36), [
        "GITHUB_TOKEN={v}", "git clone https://{v}@github.com/acme/repo.git", "Authorization: token {v}",
        "use {v} for the CI"]),
    "github_fine_grained": ("secret", lambda r: "github_pat_" + pick(r, ALNUM, 22) + "_" + pick(r, ALNUM, 59), [
        "GH_TOKEN={v}", "gh auth login --with-token <<< {v}", '{{"token": "{v}"}}']),
    "gitlab_token": ("secret", lambda r: r.choice(["glpat-", "glpat-", "gldt-", "glrt-"]) + pick(r, ALNUM + "_-", 20), [
        "GITLAB_TOKEN={v}", "PRIVATE-TOKEN: {v}", "curl --header \"PRIVATE-TOKEN: {v}\" https://gitlab.example.com/api/v4/projects",
        "the runner uses {v}"]),
    "slack_token": ("secret", lambda r: f"xox{r.choice('bpa')}-{r.randint(10**11, 10**12)}-{r.randint(10**11, 10**12)}-{pick(r, ALNUM, 24)}", [
        "SLACK_BOT_TOKEN={v}", "slack_sdk.WebClient(token=\"{v}\")", "bot token {v}"]),
    "slack_webhook": ("secret", lambda r: f"https://hooks.slack.com/services/T{pick(r, UPPER_DIGITS, 8)}/B{pick(r, UPPER_DIGITS, 8)}/{pick(r, ALNUM, 24)}", [
        "SLACK_WEBHOOK_URL={v}", "requests.post(\"{v}\", json=payload)", "alerts go to {v}"]),
    "discord_webhook": ("secret", lambda r: f"https://discord.com/api/webhooks/{r.randint(10**17, 10**18)}/{pick(r, ALNUM + '_-', 68)}", [
        "DISCORD_WEBHOOK={v}", "post the summary to {v}", 'webhook_url: "{v}"']),
    "teams_webhook": ("secret", lambda r: f"https://acme.webhook.office.com/webhookb2/{uuid.UUID(int=r.getrandbits(128))}@{uuid.UUID(int=r.getrandbits(128))}/IncomingWebhook/{pick(r, HEX, 32)}/{uuid.UUID(int=r.getrandbits(128))}", [
        "TEAMS_WEBHOOK_URL={v}", "send the card to {v}", '"url": "{v}"']),
    "stripe_key": ("secret", lambda r: r.choice(["sk_live_", "rk_live_", "sk_test_"]) + pick(r, ALNUM, 99), [
        "STRIPE_SECRET_KEY={v}", "stripe.api_key = \"{v}\"", "charge with {v}"]),
    "huggingface_token": ("secret", lambda r: "hf_" + pick(r, string.ascii_letters, 34), [
        "HF_TOKEN={v}", "huggingface-cli login --token {v}", "login(token=\"{v}\")", "my hub token is {v}"]),
    "sendgrid_key": ("secret", lambda r: f"SG.{pick(r, ALNUM + '_-', 22)}.{pick(r, ALNUM + '_-', 43)}", [
        "SENDGRID_API_KEY={v}", "sg = SendGridAPIClient('{v}')", "mail key {v}"]),
    "twilio_key": ("secret", lambda r: "SK" + pick(r, HEX, 32), [
        "TWILIO_API_KEY={v}", "Client('{v}', secret)", "twilio key {v}"]),
    "npm_token": ("secret", lambda r: "npm_" + pick(r, ALNUM, 36), [
        "//registry.npmjs.org/:_authToken={v}", "NPM_TOKEN={v}", "npm token {v} for publishing"]),
    "pypi_token": ("secret", lambda r: "pypi-AgEIcHlwaS5vcmc" + pick(r, ALNUM + "_-", 70), [
        "TWINE_PASSWORD={v}", "password = {v}", "uv publish --token {v}"]),
    "telegram_bot_token": ("secret", lambda r: f"{r.randint(10**8, 10**10)}:AA{pick(r, ALNUM + '_-', 33)}", [
        "TELEGRAM_BOT_TOKEN={v}", "https://api.telegram.org/bot{v}/sendMessage", "bot = Bot(\"{v}\")"]),
    "jwt": ("secret", _jwt, [
        "Authorization: Bearer {v}", "cookie session={v}; Path=/", '{{"id_token": "{v}"}}', "token {v} expired"]),
    "private_key": ("secret", lambda r: _pem(r, r.choice(["RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY"])), [
        "{v}", "key file:\n{v}\n", "```\n{v}\n```"]),
    "database_url": ("secret", _password, [
        "DATABASE_URL=postgresql://app:{v}@db.internal:5432/app",
        "engine = create_engine(\"mysql+pymysql://root:{v}@10-0-0-5.local/shop\")",
        "MONGO_URI=mongodb+srv://admin:{v}@cluster0.abcde.mongodb.net/test", "postgres://reporter:{v}@pg.example.com/metrics"]),
    "broker_url": ("secret", _password, [
        "REDIS_URL=redis://:{v}@cache.internal:6379/0", "CELERY_BROKER_URL=amqp://worker:{v}@rabbit.internal:5672//",
        "rediss://default:{v}@redis-12345.cloud.example.com:12345", "broker: amqps://svc:{v}@mq.example.org/vhost"]),
    "keyword_secret": ("secret", lambda r: _password(r), [
        "password={v}", "password: {v}", '"password": "{v}"', "DB_PASSWORD={v}", "client_secret = '{v}'",
        "secret: {v}", "api_key = \"{v}\"", "pwd={v}", "passwd: {v}", "token: {v}", "auth_token={v}",
        "SECRET_KEY = '{v}'", "<password>{v}</password>", "--password {v}", "The password is {v}"]),
    "ssn": ("pii", _ssn, [
        "SSN {v}", "Social Security number: {v}", "ssn={v}", '{{"ssn": "{v}"}}', "my SSN is {v}, born 1980",
        "employee {v} onboarding"]),
    "uk_nino": ("pii", _nino, [
        "NI number: {v}", "National Insurance {v}", "nino={v}", "HMRC record for {v}"]),
    "iban": ("pii", lambda r: iban(r, *r.choice([("DE", 18), ("FR", 23), ("GB", 18), ("NL", 14), ("ES", 20)])), [
        "IBAN: {v}", "pay to {v} by Friday", '{{"iban": "{v}"}}']),
    "phone_e164": ("pii", lambda r: r.choice(["+1", "+44", "+33", "+49", "+34", "+61"]) + pick(r, "123456789", 1) + pick(r, string.digits, 8), [
        "call me at {v}", "phone: {v}", '{{"phone": "{v}"}}', "sms sent to {v}"]),
    "phone_us": ("pii", lambda r: r.choice(["({a}) {b}-{c}", "{a}-{b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}"]).format(
        a=r.randint(201, 989), b=r.randint(200, 999), c=f"{r.randint(0, 9999):04d}"), [
        "call {v} after 5pm", "Phone: {v}", "reach the front desk on {v}"]),
    "phone_uk": ("pii", lambda r: r.choice(["020 7{a} {b}", "07700 9{a}{c}", "+44 20 7{a} {b}", "0161 4{c} {b}"]).format(
        a=f"{r.randint(0, 999):03d}", b=f"{r.randint(0, 9999):04d}", c=f"{r.randint(0, 99):02d}"), [
        "ring {v} tomorrow", "Tel: {v}", "mobile {v}"]),
    "phone_fr": ("pii", lambda r: r.choice(["0{d} {p}", "+33 {d} {p}", "0{d}.{q}"]).format(
        d=r.randint(1, 7), p=" ".join(f"{r.randint(0, 99):02d}" for _ in range(4)),
        q=".".join(f"{r.randint(0, 99):02d}" for _ in range(4))), [
        "appelez le {v}", "Tél. : {v}", "portable {v}"]),
    "phone_de": ("pii", lambda r: r.choice(["030 {a}", "+49 30 {a}", "0171 {b}", "089/{a}"]).format(
        a=r.randint(10**7, 10**8 - 1), b=r.randint(10**6, 10**7 - 1)), [
        "Telefon: {v}", "rufen Sie {v} an", "Handy {v}"]),
    "email": ("pii", lambda r: f"{r.choice(['ada', 'bob.smith', 'c.jones', 'dev+test', 'x_y'])}{r.randint(1, 999)}@{r.choice(['example.com', 'mail.example.org', 'corp.example.co.uk'])}", [
        "contact {v} for details", "From: {v}", '{{"email": "{v}"}}', "<{v}>", "mailto:{v}"]),
    "credit_card": ("pii", lambda r: r.choice([
        lambda: luhn_complete("4", 16, r), lambda: luhn_complete(r.choice(["51", "55", "2221"]), 16, r), lambda: luhn_complete("37", 15, r)])(), [
        "card {v} exp 12/27", "Card number: {v}", '{{"pan": "{v}"}}', "charged to {v}"]),
    "ipv4": ("pii", lambda r: f"{r.choice([10, 172, 192, 81, 203])}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(1, 254)}", [
        "client {v} connected", "GET /index.html from {v}", '{{"ip": "{v}"}}', "ssh root@{v}"]),
    "ipv6": ("pii", lambda r: "2001:db8:" + r.choice(["", "85a3:"]) + ":" + ":".join(f"{r.randint(1, 0xffff):x}" for _ in range(3)), [
        "client [{v}] connected", "ipv6 address {v}", '{{"ip": "{v}"}}']),
}


# -- hard negatives: kind -> maker of a whole text ------------------------------------------------------------

def _sha(rng: random.Random) -> str:
    return hashlib.sha1(rng.randbytes(16)).hexdigest()


def _sha256(rng: random.Random) -> str:
    return hashlib.sha256(rng.randbytes(16)).hexdigest()


NEGATIVES: dict[str, list[Callable[[random.Random], str]]] = {
    "uuid": [lambda r: f"request_id={uuid.UUID(int=r.getrandbits(128), version=4)}",
             lambda r: f'{{"trace_id": "{uuid.UUID(int=r.getrandbits(128), version=4)}", "status": "ok"}}',
             lambda r: f"run {uuid.UUID(int=r.getrandbits(128), version=4).hex} finished"],
    "git_sha": [lambda r: f"commit {_sha(r)}", lambda r: f"Merge {_sha(r)[:7]} into main",
                lambda r: f"fixed in {_sha(r)[:10]} (see the changelog)", lambda r: f"HEAD is now at {_sha(r)[:8]} docs"],
    "sha256": [lambda r: f"2024-03-02T10:00:00Z INFO downloaded model.bin sha256={_sha256(r)}",
               lambda r: f"{_sha256(r)}  dist/llmops_lab-0.1.0.tar.gz",
               lambda r: f"md5 {hashlib.md5(r.randbytes(8)).hexdigest()} matches"],
    "docker_digest": [lambda r: f"image: python:3.11-slim@sha256:{_sha256(r)}",
                      lambda r: f"Digest: sha256:{_sha256(r)}"],
    "data_uri": [lambda r: f'<img src="data:image/png;base64,{base64.b64encode(r.randbytes(60)).decode()}">',
                 lambda r: f"![chart](data:image/jpeg;base64,{base64.b64encode(r.randbytes(90)).decode()})"],
    "integrity_hash": [lambda r: f'"integrity": "sha512-{base64.b64encode(r.randbytes(64)).decode()}"'],
    "version": [lambda r: f"llmops-lab {r.randint(0, 3)}.{r.randint(0, 30)}.{r.randint(0, 9)} released",
                lambda r: f"requires numpy>={r.randint(1, 2)}.{r.randint(0, 26)}.{r.randint(0, 5)},<3",
                lambda r: f"v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 20)}-rc.{r.randint(1, 4)}+build.{r.randint(100, 999)}"],
    "price": [lambda r: f"total ${r.randint(1, 9999)}.{r.randint(0, 99):02d} incl. VAT",
              lambda r: f"costs {r.randint(1, 500)},{r.randint(0, 99):02d} € per month",
              lambda r: f"$0.{r.randint(1, 99):02d} per 1,000 tokens"],
    "datetime": [lambda r: f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d} {r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}",
                 lambda r: f"meeting on {r.randint(1, 28):02d}/{r.randint(1, 12):02d}/2025 at {r.randint(8, 18)}:30",
                 lambda r: f"ts={r.randint(1_600_000_000, 1_800_000_000)} level=info msg=\"flushed\"",
                 lambda r: f"took {r.randint(1, 999)}.{r.randint(100, 999)} ms at 2025-0{r.randint(1, 9)}-1{r.randint(0, 9)}T0{r.randint(0, 9)}:15:00.123456+00:00"],
    "hex_colour": [lambda r: f"color: #{pick(r, HEX, 6)}; background: #{pick(r, HEX, 3)};"],
    "file_path": [lambda r: f"saved to /home/{r.choice(['ada', 'bob'])}/projects/llm-eval/data/reviews_2024_q{r.randint(1, 4)}.parquet",
                  lambda r: f"C:\\Users\\Public\\Documents\\report_{r.randint(1, 99)}.xlsx",
                  lambda r: f"see notebooks/experiments/{r.choice(['baseline', 'few_shot'])}_v{r.randint(1, 9)}.ipynb"],
    "identifier": [lambda r: f"class {r.choice(['Review', 'Customer', 'Invoice'])}ClassifierPromptBuilderV{r.randint(2, 9)}Factory",
                   lambda r: f"getUserAccountDetailsById{r.randint(2000, 2030)}Version()",
                   lambda r: f"model = meta-llama/Llama-3.{r.randint(1, 3)}-{r.choice([8, 70])}B-Instruct"],
    "order_number": [lambda r: f"order #{r.randint(10**6, 10**8)} shipped",
                     lambda r: f"invoice INV-{r.randint(2020, 2026)}-{r.randint(1, 99999):05d}",
                     lambda r: f"ticket JIRA-{r.randint(100, 9999)} closed"],
    "isbn": [lambda r: f"ISBN 978-{r.randint(0, 1)}-{r.randint(100, 999)}-{r.randint(10000, 99999)}-{r.randint(0, 9)}"],
    "prose_numbers": [lambda r: f"We sold {r.randint(100, 99999)} units in {r.randint(2019, 2025)}, up {r.randint(1, 40)}% from {r.randint(100, 9999)}.",
                      lambda r: f"the {r.randint(3, 12)} regions had {r.randint(10, 999)} stores and {r.randint(1000, 99999)} staff",
                      lambda r: f"scores: {r.random():.4f}, {r.random():.4f}, {r.random():.4f}"],
    "keyword_prose": [lambda r: r.choice(["Click the password reset link to choose a new one.",
                                          "The token budget is 512 per request.",
                                          "max_tokens = 512", "Rotate the API key every 90 days.",
                                          "password: ********", "api_key = os.environ[\"OPENAI_API_KEY\"]",
                                          "token = get_token()", "password = None", "secret: ${DB_SECRET}",
                                          "password: <redacted>", "api_key=${API_KEY}", "secret_name = \"prod\"",
                                          "the secret to good prompts is examples", "tokens: 1024",
                                          "password_min_length = 12", "token_type: bearer",
                                          "Your API key is shown once; store it in a vault.",
                                          "if password == confirm_password:", "TOKEN=your_token_here",
                                          "credentials: ~/.aws/credentials", "The password is incorrect.",
                                          "pwd: /home/ada/project", "password = new_password",
                                          "cache key 5d41402abc4b2a76b9719d911017c592"])
                      + f" (case {r.randint(1, 999)})"],
    "url": [lambda r: f"https://docs.example.com/guide/{r.choice(['install', 'config', 'faq'])}?page={r.randint(1, 20)}#section-{r.randint(1, 9)}",
            lambda r: f"postgresql://db.internal:5432/app_{r.randint(1, 9)}",
            lambda r: f"git@github.com:acme/repo-{r.randint(1, 99)}.git"],
    "numbers_dashed": [lambda r: f"phone-like part number {r.randint(100, 999)}-{r.randint(1000, 9999)}",
                       lambda r: f"lot 000-{r.randint(10, 99)}-{r.randint(1000, 9999)} and 666-{r.randint(10, 99)}-{r.randint(1000, 9999)}",
                       lambda r: f"ref {r.randint(900, 999)}-{r.randint(10, 99)}-{r.randint(1000, 9999)}"],
    "card_like": [lambda r: f"tracking {luhn_complete('4', 16, r)[:-1]}{'x'} and {r.randint(10**15, 10**16 - 1)}0",
                  lambda r: f"account 0000 0000 0000 0000 and IBAN-like DE00 {r.randint(1000, 9999)} {r.randint(1000, 9999)} 0000 00"],
    "base64_text": [lambda r: "payload: " + base64.b64encode(r.choice([b"hello world", b'{"a": 1}', b"plain text"])).decode()],
}


def positives(rng: random.Random) -> list[dict]:
    rows = []
    for kind, (category, make, contexts) in POSITIVES.items():
        n = max(PER_KIND, len(contexts))
        for i in range(n):
            value = make(rng)
            rows.append({"text": contexts[i % len(contexts)].format(v=value), "kind": kind, "category": category,
                         "value": value})
    return rows


def negatives(rng: random.Random) -> list[dict]:
    rows = []
    for kind, makers in NEGATIVES.items():
        for i in range(16):
            rows.append({"text": makers[i % len(makers)](rng), "kind": kind})
    return rows


def write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def main() -> None:
    rng = random.Random(SEED)
    write(HERE / "positives.jsonl", positives(rng))
    write(HERE / "negatives.jsonl", negatives(rng))


if __name__ == "__main__":
    main()
