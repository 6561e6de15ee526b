# ruff: noqa: E501  (case tables read best one case per line)
"""Builds the held-out sets (pii_heldout.jsonl, secrets_heldout.jsonl): formats and contexts build.py never makes.

Written before the detectors were changed against them, to measure how the
detectors do on text they were not tuned for: other national phone formats,
IBANs of other countries, cards in prose, secrets in YAML / TOML / HCL /
Dockerfiles / shell history / stack traces, and hard negatives (UUIDs, SHAs,
digests, base64 images, order numbers, versions, placeholder keys). Values are
random but valid (own seed); contexts are hand-written here and nowhere else.
Run: python -m tests.corpus.build_heldout
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat as PNF
from phonenumbers import PhoneNumberType as PNT
from stdnum import iban as stdnum_iban
from stdnum import luhn

HERE = Path(__file__).parent
R = random.Random(77031)
AZ09 = string.ascii_uppercase + string.digits
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def rs(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


def phone(region: str, fmt: int, kind: int = PNT.MOBILE) -> str:
    """A valid number of `region` (the example number with fresh last digits)."""
    ex = phonenumbers.example_number_for_type(region, kind)
    assert ex is not None
    nsn = str(ex.national_number)
    for _ in range(200):
        cand = phonenumbers.parse("+" + str(ex.country_code) + nsn[:-4] + rs(string.digits, 4), None)
        if phonenumbers.is_valid_number(cand):
            return phonenumbers.format_number(cand, fmt)
    return phonenumbers.format_number(ex, fmt)


def card(prefix: str, length: int, sep: str = "", groups: tuple[int, ...] = ()) -> str:
    body = prefix + rs(string.digits, length - len(prefix) - 1)
    number = body + luhn.calc_check_digit(body)
    if not sep:
        return number
    out, i = [], 0
    for g in groups:
        out.append(number[i : i + g])
        i += g
    return sep.join(out)


def iban(country: str, bban: str, spaced: bool) -> str:
    for _ in range(1000):  # some countries carry a national check digit too: retry the tail
        value = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
        if stdnum_iban.is_valid(value):
            break
        bban = bban[:-2] + rs(string.digits, 2)
    assert stdnum_iban.is_valid(value), value
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if spaced else value


def pii_rows() -> list[tuple[str, list[tuple[str, str]]]]:
    rows: list[tuple[str, list[tuple[str, str]]]] = []

    def add(text: str, *labels: tuple[str, str]) -> None:
        rows.append((text, list(labels)))

    # phones: international forms of regions build.py never uses, and national forms
    for region, ctx in [("SE", "Ring mig på {v} ikväll."), ("PL", "Numer kontaktowy: {v}"), ("CN", "客服电话 {v}"), ("MX", "Llámame al {v} por favor"),
                        ("ZA", "Cell: {v}"), ("KR", "연락처 {v}"), ("SG", "WhatsApp me at {v}"), ("NZ", "mob {v}"), ("IE", "You can reach Siobhan on {v}."),
                        ("CH", "Tel. {v}"), ("AT", "Handy {v}"), ("BE", "GSM: {v}"), ("AR", "celular {v}"), ("NG", "My line is {v}"), ("KE", "M-Pesa number {v}"),
                        ("TR", "Telefon: {v}"), ("RU", "Телефон {v}"), ("IL", "phone {v}"), ("AE", "Call {v} for the driver"), ("CA", "Our Moncton office: {v}")]:
        v = phone(region, PNF.INTERNATIONAL)
        add(ctx.format(v=v), ("phone", v))
    for region, ctx in [("FR", "Rappelez-moi au {v} demain."), ("DE", "Rufnummer {v}"), ("JP", "携帯 {v}"), ("BR", "Meu zap: {v}"), ("IN", "Mobile no. {v}"),
                        ("AU", "ph {v} after 5"), ("GB", "Landline {v}"), ("ES", "Llámenos al {v}"), ("IT", "cellulare {v}"), ("NL", "Bel {v} voor een afspraak")]:
        v = phone(region, PNF.NATIONAL)
        add(ctx.format(v=v), ("phone", v))
    for region in ("US", "GB", "DE", "FR"):
        v = phone(region, PNF.RFC3966)[4:]  # tel:+1-…  without the scheme
        add(f"<a href=\"tel:{v}\">call us</a>", ("phone", v))
    v = phone("US", PNF.NATIONAL).replace("(", "").replace(") ", ".").replace("-", ".")
    add(f"Office line {v}, ask for Dana.", ("phone", v))
    v = "+1 " + phone("US", PNF.NATIONAL)
    add(f"Customer called from {v} ext. 204 about the refund.", ("phone", v))
    v = "1-" + phone("US", PNF.NATIONAL).replace("(", "").replace(") ", "-")
    add(f"Toll-free isn't working, so use {v} instead.", ("phone", v))

    # IBANs of countries build.py never generates
    for country, bban, ctx in [("PL", rs(string.digits, 24), "Proszę o przelew na konto {v}."), ("SE", rs(string.digits, 20), "Kontonummer (IBAN): {v}"),
                               ("NO", rs(string.digits, 11), "Betal til {v} innen fredag"), ("DK", rs(string.digits, 14), "Overfør til {v}"),
                               ("FI", rs(string.digits, 14), "Tilinumero {v}"), ("AT", rs(string.digits, 16), "Bankverbindung: {v} (Erste Bank)"),
                               ("PT", rs(string.digits, 21), "NIB/IBAN {v}"), ("IE", "AIBK" + rs(string.digits, 14), "Please lodge the deposit to {v}, ref SMITH."),
                               ("LU", rs(string.digits, 3) + rs(AZ09, 13), "Compte {v}"), ("SA", rs(string.digits, 2) + rs(string.digits, 18), "Wire to {v} (Al Rajhi)"),
                               ("AE", rs(string.digits, 19), "Beneficiary IBAN: {v}"), ("TR", rs(string.digits, 6) + rs(string.digits, 16), "Alıcı IBAN {v}"),
                               ("HU", rs(string.digits, 24), "Számlaszám: {v}"), ("CZ", rs(string.digits, 20), "Číslo účtu {v}"), ("HR", rs(string.digits, 17), "IBAN primatelja: {v}"),
                               ("EE", rs(string.digits, 16), "Arvelduskonto {v}"), ("LT", rs(string.digits, 16), "Sąskaita {v}"), ("IL", rs(string.digits, 19), "account {v} at Leumi"),
                               ("RO", "BTRL" + rs(AZ09, 16), "Cont bancar {v}"), ("GR", rs(string.digits, 7) + rs(AZ09, 16), "Αριθμός λογαριασμού {v}")]:
        for spaced in (True, False):
            v = iban(country, bban, spaced)
            add(ctx.format(v=v), ("iban", v))
            bban = bban[:-3] + rs(string.digits, 3)

    # cards in prose and in other shapes
    for prefix, length, sep, groups, ctx in [
        ("4", 16, "", (), "ok the visa is {v} and the code on the back is 318"),
        ("4", 16, " ", (4, 4, 4, 4), "Hi, I was charged twice on my card {v} — can you refund one?"),
        ("5", 16, "-", (4, 4, 4, 4), "Mastercard: {v}"),
        ("2720", 16, " ", (4, 4, 4, 4), "New Mastercard range card {v} was declined at checkout"),
        ("37", 15, " ", (4, 6, 5), "Amex {v}, exp 04/28"),
        ("6011", 16, " ", (4, 4, 4, 4), "Discover card number {v}"),
        ("3530", 16, " ", (4, 4, 4, 4), "JCB {v} (Tokyo branch)"),
        ("36", 14, " ", (4, 6, 4), "Diners Club {v}"),
        ("4", 19, "", (), "pan={v}&amount=12.00"),
        ("5", 16, "", (), "<CardNumber>{v}</CardNumber>"),
        ("4", 16, " ", (4, 4, 4, 4), "Card:\n{v}\nName: R. Okafor"),
        ("4", 13, "", (), "old 13-digit visa {v}"),
        ("6", 16, "-", (4, 4, 4, 4), "UnionPay {v}"),
        ("51", 16, " ", (4, 4, 4, 4), "my credit card is {v}. please don't store it"),
        ("34", 15, "-", (4, 6, 5), "Corporate amex {v} for travel"),
        ("4", 16, "", (), "INSERT INTO payments VALUES (42, '{v}', '2027-01');"),
    ]:
        if prefix == "5":
            prefix = R.choice(["51", "52", "53", "54", "55"])
        if prefix == "6":
            prefix = "62"
        v = card(prefix, length, sep, groups)
        add(ctx.format(v=v), ("credit_card", v))

    # emails, SSNs and IPs in contexts build.py does not use
    for v, ctx in [("Ana.Souza@Empresa.com.br", "Envie para {v} até sexta."), ("k.tanaka@dept.eng.u-tokyo.ac.jp", "Prof. Tanaka <{v}>"),
                   ("noreply+build-4411@ci.internal.acme.dev", "From: Jenkins <{v}>"), ("o'brien@firm.ie", "mail o'brien? no: {v}"),
                   ("ZHANG_WEI@QQ.COM", "邮箱：{v}"), ("first.last@mail.example.museum", "({v})"), ("rosa@pm.me", "<{v}>,")]:
        add(ctx.format(v=v), ("email", v))
    for v, ctx in [("536-90-4512", "SSN on file: {v}."), ("123 45 6780", "social security no. {v}"), ("401928371", "SSN#: {v}"),
                   ("212-31-7788", "Applicant (SSN {v}) was approved."), ("078-41-2290", "ssn={v}&dob=1990")]:
        add(ctx.format(v=v), ("us_ssn", v))
    for v, ctx in [("203.0.113.45", "{v} - - [12/Mar/2024:10:01:22 +0000] \"GET / HTTP/1.1\" 200"), ("2a03:2880:f12f:83:face:b00c:0:25de", "AAAA record: {v}"),
                   ("198.51.100.23", "ssh admin@{v}"), ("2001:0db8:85a3:0000:0000:8a2e:0370:7334", "inet6 {v}/64 scope global"),
                   ("100.64.12.9", "Tailscale node at {v}"), ("fd12:3456:789a:1::1", "ULA {v}")]:
        add(ctx.format(v=v), ("ip_address", v))
    add("X-Forwarded-For: 172.16.254.3, 10.0.0.1", ("ip_address", "172.16.254.3"), ("ip_address", "10.0.0.1"))

    # hard negatives
    for text in [
        f"trace_id={uuid.UUID(int=R.getrandbits(128))} span_id={rs(HEX, 16)}", f"git log: {rs(HEX, 40)} Merge pull request #4412",
        f"image: ghcr.io/acme/api@sha256:{rs(HEX, 64)}", f"integrity sha512-{base64.b64encode(hashlib.sha512(b'x').digest()).decode()}",
        "Your order 4417-2290-1183 has shipped; tracking 9400 1000 0000 0000 0000 00.", "Order #20240315-88231 total $1,204.50",
        "Chrome/124.0.6367.91 Safari/537.36", "Kernel 6.8.0-31-generic, glibc 2.39", "pip install django==4.2.11 celery==5.3.6",
        "OID 1.3.6.1.4.1.311.21.20", "Build 2024.03.15.1 is live", "The flight departs 14:35 and lands 18:50, gate 12.",
        "IMEI 490154203237518", "ISBN-13: 978-0-306-40615-7", "EAN 5901234123457", "Invoice INV-2024-000123, due 30/04/2024",
        "Coordinates: 51.5074° N, 0.1278° W", "Matrix: [[1, 2, 3], [4, 5, 6]]", "The population grew from 1,234,567 to 2,345,678.",
        "Our IBAN format check rejects GB00 0000 0000 0000 0000 00.", "Use 4111-1111-1111-1112 to test declines (it fails Luhn).",
        "The SSN format is AAA-GG-SSSS; 000-12-3456 is never issued.", "Subnet mask 255.255.240.0 on eth0", "listen 0.0.0.0:8443",
        "color: #1a2b3c; margin: 10px 20px", "Phone numbers in E.164 start with + and a country code.", "Room 404, floor 3, building 12",
        "hash md5 = 5d41402abc4b2a76b9719d911017c592", f"data:image/jpeg;base64,/9j/4AAQSkZJRgABAQ{rs(ALNUM + '+/', 60)}==",
        "Run 10 000 iterations with seed 42 and batch 256.", "Ticket SUP-10293 was merged into SUP-10288.", "Release 3.10.0.2 notes",
        "Dimensions 1920x1080, 60 fps, bitrate 8000 kbps", "call stack depth 1024 exceeded at frame 77",
        "user@localhost is the default MySQL account name", "Price: 12.99 USD, SKU 0012345678905",
    ]:
        add(text)
    return rows


def secret_rows() -> list[tuple[str, list[tuple[str, str]]]]:
    rows: list[tuple[str, list[tuple[str, str]]]] = []

    def add(text: str, *labels: tuple[str, str]) -> None:
        rows.append((text, list(labels)))

    akia, aws_secret = "AKIA" + rs(AZ09, 16), rs(ALNUM + "/+", 40)
    add(f'provider "aws" {{\n  region     = "eu-west-1"\n  access_key = "{akia}"\n  secret_key = "{aws_secret}"\n}}', ("aws_access_key_id", akia), ("aws_secret_access_key", aws_secret))
    akia, aws_secret = "AKIA" + rs(AZ09, 16), rs(ALNUM + "/+", 40)
    add(f"[default]\naws_access_key_id={akia}\naws_secret_access_key={aws_secret}\nregion=us-east-2", ("aws_access_key_id", akia), ("aws_secret_access_key", aws_secret))
    akia, aws_secret = "ASIA" + rs(AZ09, 16), rs(ALNUM + "/+", 40)
    add(f"  501  export AWS_ACCESS_KEY_ID={akia}\n  502  export AWS_SECRET_ACCESS_KEY={aws_secret}\n  503  aws s3 ls", ("aws_access_key_id", akia), ("aws_secret_access_key", aws_secret))
    akia = "AKIA" + rs(AZ09, 16)
    add(f"botocore.exceptions.ClientError: An error occurred (InvalidAccessKeyId) when calling the ListBuckets operation: The AWS Access Key Id {akia} does not exist", ("aws_access_key_id", akia))
    aws_secret = rs(ALNUM + "/+", 40)
    add(f"env:\n  - name: AWS_SECRET_ACCESS_KEY\n    value: \"{aws_secret}\"", ("aws_secret_access_key", aws_secret))
    for ctx in ["ENV GITHUB_TOKEN={v}", "RUN git clone https://x-access-token:{v}@github.com/acme/private.git", "  github_token = \"{v}\"  # hcl", "gh auth login --with-token <<< {v}",
                "[github]\ntoken = \"{v}\"", "remote: Invalid username or password.\nfatal: Authentication failed for 'https://{v}@github.com/acme/app.git/'"]:
        v = R.choice(["ghp_", "gho_", "ghs_"]) + rs(ALNUM, 36)
        add(ctx.format(v=v), ("github_token", v))
    v = "github_pat_" + rs(ALNUM, 22) + "_" + rs(ALNUM, 59)
    add(f"token: {v}", ("github_token", v))
    for ctx in ["variables:\n  GITLAB_TOKEN: \"{v}\"", "git push https://oauth2:{v}@gitlab.com/acme/app.git", "ARG CI_TOKEN={v}"]:
        v = "glpat-" + rs(ALNUM + "_-", 20)
        add(ctx.format(v=v), ("gitlab_token", v))
    for ctx in ["slack:\n  bot_token: {v}", "  88  curl -H 'Authorization: Bearer {v}' https://slack.com/api/auth.test", "SLACK_TOKEN = \"{v}\""]:
        v = f"xox{R.choice('bp')}-{rs(string.digits, 11)}-{rs(string.digits, 13)}-{rs(ALNUM, 24)}"
        add(ctx.format(v=v), ("slack_token", v))
    for ctx in ["alerts:\n  slack_url: '{v}'", "requests.exceptions.HTTPError: 404 Client Error: Not Found for url: {v}", "webhook = \"{v}\"  # toml"]:
        v = f"https://hooks.slack.com/services/T{rs(AZ09, 10)}/B{rs(AZ09, 10)}/{rs(ALNUM, 24)}"
        add(ctx.format(v=v), ("slack_webhook", v))
    for ctx in ["const stripe = require('stripe')('{v}');", "stripe:\n  secret: {v}", "Stripe::InvalidRequestError: No such customer; request made with key {v}", "ENV STRIPE_API_KEY {v}"]:
        v = R.choice(["sk_live_", "rk_live_"]) + rs(ALNUM, R.choice([24, 99]))
        add(ctx.format(v=v), ("stripe_key", v))
    for ctx in ["openai:\n  api_key: {v}", "  733  OPENAI_API_KEY={v} python app.py", "openai.AuthenticationError: Error code: 401 - Incorrect API key provided: {v}", "[llm]\nkey = \"{v}\""]:
        v = "sk-proj-" + rs(ALNUM + "_-", 74) + "T3BlbkFJ" + rs(ALNUM + "_-", 74) if R.random() < 0.6 else "sk-svcacct-" + rs(ALNUM + "_-", 120)
        add(ctx.format(v=v), ("openai_key", v))
    for ctx in ["anthropic_api_key = \"{v}\"", "  91  curl https://api.anthropic.com/v1/messages -H \"x-api-key: {v}\"", "ENV ANTHROPIC_API_KEY={v}"]:
        v = "sk-ant-api03-" + rs(ALNUM + "_-", 93) + "AA"
        add(ctx.format(v=v), ("anthropic_key", v))
    for ctx in ["<meta-data android:name=\"com.google.android.geo.API_KEY\" android:value=\"{v}\"/>", "firebase:\n  apiKey: \"{v}\"", "fetch(`https://www.googleapis.com/youtube/v3/search?part=snippet&key={v}`)"]:
        v = "AIza" + rs(ALNUM + "_-", 35)
        add(ctx.format(v=v), ("google_api_key", v))
    pem_body = "\n".join(rs(ALNUM + "+/", 64) for _ in range(5))
    for kind, ctx in [("OPENSSH", "cat ~/.ssh/id_ed25519\n{v}"), ("EC", "tls:\n  key: |\n    {v}"), ("", "resource \"tls_private_key\" {{}}\n# leaked: {v}")]:
        label = f"BEGIN {kind} PRIVATE KEY" if kind else "BEGIN PRIVATE KEY"
        v = f"-----{label}-----\n{pem_body}\n-----{label.replace('BEGIN', 'END')}-----"
        add(ctx.format(v=v), ("private_key", v))
    for ctx in ["curl -H \"Authorization: Bearer {v}\" https://api.acme.dev/me", "jwt: {v}", "Set-Cookie: access_token={v}; HttpOnly; Secure"]:
        header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "kid": rs(HEX, 8)}).encode()).decode().rstrip("=")
        body = base64.urlsafe_b64encode(json.dumps({"sub": rs(HEX, 12), "iat": R.randint(1.7e9, 1.8e9)}).encode()).decode().rstrip("=")
        v = f"{header}.{body}.{rs(ALNUM + '_-', 86)}"
        add(ctx.format(v=v), ("jwt", v))
    for ctx in ["storage:\n  connection_string: \"DefaultEndpointsProtocol=https;AccountName=logs01;AccountKey={v};EndpointSuffix=core.windows.net\"",
                "az storage blob list --account-name acme --account-key {v}", "AZURE_STORAGE_KEY={v}"]:
        v = rs(ALNUM + "+/", 86) + "=="
        add(ctx.format(v=v), ("azure_storage_key", v))
    for ctx in ["twilio:\n  api_key: {v}", "client = Client('{v}', api_secret, account_sid)"]:
        v = "SK" + rs(HEX, 32)
        add(ctx.format(v=v), ("twilio_key", v))
    v = rs(HEX, 32)
    add(f"TWILIO_AUTH_TOKEN = \"{v}\"", ("twilio_key", v))
    for ctx in ["sendgrid:\n  api_key: {v}", "python_http_client.exceptions.UnauthorizedError: HTTP Error 401 (key {v})"]:
        v = "SG." + rs(ALNUM + "_-", 22) + "." + rs(ALNUM + "_-", 43)
        add(ctx.format(v=v), ("sendgrid_key", v))
    for ctx in ["RUN echo \"//registry.npmjs.org/:_authToken={v}\" > ~/.npmrc", "  np_token = \"{v}\"", "npm config set //npm.pkg.github.com/:_authToken {v}"]:
        v = "npm_" + rs(ALNUM, 36)
        add(ctx.format(v=v), ("npm_token", v))
    for ctx in ["huggingface-cli login --token {v}", "hf:\n  token: {v}", "ENV HUGGING_FACE_HUB_TOKEN={v}"]:
        v = "hf_" + rs(ALNUM, 34)
        add(ctx.format(v=v), ("huggingface_token", v))
    for ctx in ["sqlalchemy.exc.OperationalError: (psycopg2.OperationalError) connection to server failed\n(Background on this error at: postgresql://svc_app:{v}@10.2.0.14:5432/orders)",
                "spring:\n  datasource:\n    url: jdbc:mysql://db:3306/app\n    username: app\n    password: {v}", "amqp://guest2:{v}@rabbit.internal:5672/",
                "Server=tcp:acme.database.windows.net,1433;Initial Catalog=prod;User ID=sqladmin;Password={v};Encrypt=True;", "  220  psql \"postgresql://report:{v}@warehouse:5432/dw\"",
                "[mysqld]\nuser=backup\npassword={v}"]:
        v = rs(ALNUM + "!*#%", 16)
        label = "password_assignment" if ctx.startswith(("spring", "[mysqld]")) else "url_credentials"
        add(ctx.format(v=v), (label, v))
    for ctx in ["[database]\nhost = \"db.internal\"\npassword = \"{v}\"", "variable \"db_password\" {{\n  default = \"{v}\"\n}}", "ENV POSTGRES_PASSWORD={v}",
                "  310  mysql -u root --password={v} shop", "<property name=\"password\" value=\"{v}\"/>", "<password>{v}</password>", "redis:\n  requirepass: \"{v}\"",
                "Traceback (most recent call last):\n  File \"app.py\", line 12, in <module>\n    login(user='ops', password='{v}')\nConnectionRefusedError: [Errno 111]",
                "docker run -e MYSQL_ROOT_PASSWORD={v} -d mysql:8", "$settings['db_pass'] = '{v}';", "spring.datasource.password={v}", "secret_key_base: {v}",
                "kind: Secret\nstringData:\n  password: {v}", "SMTP_PASSWORD: '{v}'  # mailer"]:
        v = R.choice(["Wint3r!", "Blue#Fox", "gR8-day", "Kx9$vLm", "Zebra_42", "m0nday?"]) + rs(ALNUM, 6)
        add(ctx.format(v=v), ("password_assignment", v))
    for ctx in ["mailgun:\n  api_key: \"{v}\"", "[datadog]\napi_key = \"{v}\"", "credentials = \"{v}\"", "ENV ALGOLIA_API_KEY={v}", "client_key: {v}", "export PAGERDUTY_API_KEY={v}"]:
        v = rs(ALNUM, R.choice([24, 32, 40]))
        add(ctx.format(v=v), ("generic_high_entropy", v))

    # hard negatives: ids, hashes, digests, versions, placeholders, and words that look like assignments
    for text in [
        f"commit {rs(HEX, 40)}\nAuthor: Ana <ana@acme.dev>", f"image: acme/api@sha256:{rs(HEX, 64)}", f"\"integrity\": \"sha512-{base64.b64encode(hashlib.sha512(rs(ALNUM, 5).encode()).digest()).decode()}\"",
        f"request_id: {uuid.UUID(int=R.getrandbits(128))}", f"etag: \"{rs(HEX, 32)}\"", f"<img src=\"data:image/png;base64,iVBORw0KGgo{rs(ALNUM + '+/', 80)}=\">",
        "version = \"2.31.0\"\nrequires-python = \">=3.9\"", "Order 118-2290431-7781123 delivered", "FROM python:3.12.3-slim@sha256:" + rs(HEX, 64),
        "aws_access_key_id = AKIAXXXXXXXXXXXXXXXX", "access_key = \"<YOUR_ACCESS_KEY>\"", "secret_key = \"REPLACE_ME\"", "OPENAI_API_KEY=sk-...",
        "ANTHROPIC_API_KEY=\"sk-ant-api03-...\"", "GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}", "password: {{ .Values.db.password }}", "password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256",
        "ENV DB_PASSWORD=${DB_PASSWORD}", "password = \"$(cat /run/secrets/db_password)\"", "api_key = <%= ENV['API_KEY'] %>", "token = \"ghp_<your-token-here>\"",
        "stripe_key: sk_live_********************", "password_min_length = 12", "token_expiry_seconds = 3600", "secretName: db-credentials", "passwordField: \"password\"",
        "max_tokens: 1024", "auth:\n  type: oauth2", "api_key_header = \"X-API-Key\"", "tokenizer = AutoTokenizer.from_pretrained(\"bert-base-uncased\")",
        "STRIPE_PUBLISHABLE_KEY=pk_live_" + rs(ALNUM, 24), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI" + rs(ALNUM, 43) + " ops@bastion", "arn:aws:iam::123456789012:role/deploy",
        "GOOGLE_CLIENT_ID=1234567890-abc123def456.apps.googleusercontent.com", "payment_intent: pi_3N" + rs(ALNUM, 22), "customer: cus_" + rs(ALNUM, 14),
        "TWILIO_ACCOUNT_SID=AC" + rs(HEX, 32), "channel: C024BE91L", "public_key = \"-----BEGIN PUBLIC KEY-----\"", "-----BEGIN CERTIFICATE-----\nMIIB" + rs(ALNUM, 60),
        "Forgot your password? Reset it from the login page.", "The token is valid for 15 minutes.", "secret santa signup closes Friday", "password reset link expired",
        "const token = await getToken();", "if password == confirm_password:", "def check_password(self, raw_password):", "self.api_key = api_key",
        "String password = request.getParameter(\"password\");", "export API_KEY=\"$(vault kv get -field=key secret/app)\"", "KEY=value",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "sha1: " + rs(HEX, 40), "md5sum " + rs(HEX, 32) + "  release.tar.gz",
        "Cache-Control: max-age=31536000", "build: 20240315.4 (a1b2c3d)", "credentials: include", "auth_token_url: https://auth.example.com/token",
    ]:
        add(text)
    return rows


def main() -> None:
    for name, rows in (("pii_heldout", pii_rows()), ("secrets_heldout", secret_rows())):
        with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for i, (text, labels) in enumerate(rows, 1):
                for _t, v in labels:
                    assert v in text, (v, text)
                item = {"id": f"{name}-{i}", "text": text, "labels": [{"type": t, "value": v} for t, v in labels]}
                fh.write(json.dumps(item, ensure_ascii=False) + "\n")
        positives = sum(bool(labels) for _, labels in rows)
        print(name, len(rows), "cases,", positives, "with labels")


if __name__ == "__main__":
    main()
