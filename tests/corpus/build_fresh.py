# ruff: noqa: E501  (case tables read best one case per line)
"""Builds the *_fresh.jsonl sets: a second, never-tuned-against measurement.

pii_heldout and secrets_heldout were measured first and then used to fix
general gaps, so they are no longer unseen. These sets were written after those
fixes and are only measured: no detector change may be made against them (if
one is, move the cases into the in-sample files and write new fresh ones).
Families: structured pii, secrets, contextual pii, output_safety.
Run: python -m tests.corpus.build_fresh
"""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberFormat as PNF
from stdnum import iban as stdnum_iban
from stdnum import luhn

from tests.corpus.build_heldout import phone

HERE = Path(__file__).parent
R = random.Random(424242)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
Row = tuple[str, list[tuple[str, str]]]


def rs(alphabet: str, n: int) -> str:
    return "".join(R.choice(alphabet) for _ in range(n))


def luhn_number(prefix: str, length: int) -> str:
    body = prefix + rs(string.digits, length - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def iban(country: str, n: int) -> str:
    for _ in range(1000):
        bban = rs(string.digits, n)
        value = country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban
        if stdnum_iban.is_valid(value):
            return value
    raise AssertionError(country)


def pii_rows() -> list[Row]:
    rows: list[Row] = []
    us = phonenumbers.parse("+1" + phone("US", PNF.E164)[2:], None)
    nsn = str(us.national_number)
    for v, ctx in [
        (f"+1 ({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}", "Support hotline: {v} (24/7)"), (f"+1.{nsn[:3]}.{nsn[3:6]}.{nsn[6:]}", "m: {v}"),
        (phone("GB", PNF.NATIONAL), "Ring the surgery on {v} to book."), (phone("DE", PNF.INTERNATIONAL).replace(" ", "-"), "Fax {v}"),
        ("0049 " + phone("DE", PNF.INTERNATIONAL)[4:], "Bitte rufen Sie {v} an."), (phone("FR", PNF.INTERNATIONAL), "Standard : {v}"),
        (phone("IT", PNF.INTERNATIONAL), "WhatsApp: {v}"), (phone("NL", PNF.INTERNATIONAL), "Bereikbaar op {v}"), (phone("JP", PNF.INTERNATIONAL), "TEL {v}"),
        (phone("IN", PNF.INTERNATIONAL), "Driver's number is {v}, he will call on arrival."), (phone("BR", PNF.INTERNATIONAL), "Contato {v}"),
        (phone("AU", PNF.INTERNATIONAL), "call me {v}"), (phone("ES", PNF.INTERNATIONAL), "{v} (oficina)"), (phone("PL", PNF.INTERNATIONAL), "tel. kom. {v}"),
        (phone("SE", PNF.INTERNATIONAL), "Mobil: {v}"), (phone("MX", PNF.INTERNATIONAL), "Teléfono {v}"), (phone("US", PNF.NATIONAL), "ph# {v}"),
        (phone("US", PNF.NATIONAL), "\"phone_number\": \"{v}\""), (phone("GB", PNF.INTERNATIONAL), "Tel: {v} | Fax: none"), (phone("CA", PNF.NATIONAL), "Cell {v}"),
    ]:
        rows.append((ctx.format(v=v), [("phone", v)]))
    for v, ctx in [(iban("DE", 18).lower(), "iban={v}"), (iban("FR", 23), "RIB / IBAN : {v}"), (iban("BE", 12), "Rekening {v}"), (iban("CH", 17), "IBAN CH: {v}"),
                   (iban("NO", 11), "Kontonr {v}"), (iban("PL", 24), "przelew na {v}"), (iban("ES", 20), "Cuenta: {v}"), (iban("AT", 16), "Empfänger-IBAN {v}")]:
        spaced = " ".join(v[i : i + 4] for i in range(0, len(v), 4)) if R.random() < 0.5 else v
        rows.append((ctx.format(v=spaced), [("iban", spaced)]))
    for prefix, length, ctx in [("4", 16, "Card no. {v} exp 02/29"), ("5", 16, "I paid with my mastercard {v} yesterday"), ("37", 15, "amex number: {v}"),
                                ("6011", 16, "{v} is my discover card"), ("4", 16, "card_number: \"{v}\""), ("35", 16, "JCB card {v}"), ("4", 16, "Can you check why {v} keeps getting declined?")]:
        n = luhn_number(prefix if prefix != "5" else R.choice(["51", "53", "55"]), length)
        v = " ".join(n[i : i + 4] for i in range(0, len(n), 4)) if length == 16 and R.random() < 0.5 else n
        rows.append((ctx.format(v=v), [("credit_card", v)]))
    for v, ctx in [("Hannah.Lee@Contoso.onmicrosoft.com", "Teams invite sent to {v}"), ("billing-team@shop.example.co.jp", "Questions? {v}"),
                   ("x_y.z+tag@sub.domain.travel", "reply-to: {v}"), ("m.rossi@pec.it", "PEC: {v}")]:
        rows.append((ctx.format(v=v), [("email", v)]))
    for v, ctx in [("321-54-9876", "Tax ID (SSN): {v}"), ("587 12 3340", "Social Security # {v}")]:
        rows.append((ctx.format(v=v), [("us_ssn", v)]))
    for v, ctx in [("198.18.0.77", "Health check from {v} failed"), ("2606:4700:4700::1111", "resolver {v}"), ("172.31.5.200", "ec2 private ip: {v}")]:
        rows.append((ctx.format(v=v), [("ip_address", v)]))
    for text in [
        "Ticket #4412-8890-1123-4456 was closed.", "Tracking: 1Z 999 AA1 01 2345 6784", "Call stack: frame 0x7ffd5e8c, 0x7ffd5e90", "Epoch 1700000000000 ms",
        "Semantic version 10.4.2.1-beta", "Serial SN-2024-00012345", "The answer is 42, the question 6 x 7.", "Total: 4,111,111,111 bytes transferred",
        "GUID {3F2504E0-4F89-11D3-9A0C-0305E82C3301}", f"sha384 {rs(HEX, 96)}", "Account number format: 8 digits + 2 check digits", "Model number WD-40-1234567",
        "meeting ID 871 2345 6789 passcode 112233", "Route 12, km 45.6, exit 7", "Lot 2024-11-30-A, expiry 2026-11-30", "CVE-2024-3094 affects xz 5.6.0",
        "Firmware 3.2.1.7 and bootloader 1.0.0.12", "RGB(255, 128, 0) and #FF8000", "EIN 12-3456789 for the charity", "Amounts: 1 234 567,89 €",
    ]:
        rows.append((text, []))
    return rows


def secret_rows() -> list[Row]:
    rows: list[Row] = []
    gh, ak = "ghp_" + rs(ALNUM, 36), "AKIA" + rs(string.ascii_uppercase + string.digits, 16)
    sk = rs(ALNUM + "/+", 40)
    for text, labels in [
        (f"[profile prod]\nregion = eu-central-1\naws_access_key_id = {ak}\naws_secret_access_key = {sk}", [("aws_access_key_id", ak), ("aws_secret_access_key", sk)]),
        (f"- uses: actions/checkout@v4\n  with:\n    token: {gh}", [("github_token", gh)]),
    ]:
        rows.append((text, labels))
    cases: list[tuple[str, str, str]] = [
        ("slack_token", f"xoxb-{rs(string.digits, 12)}-{rs(string.digits, 13)}-{rs(ALNUM, 24)}", "export SLACK_BOT_TOKEN='{v}'"),
        ("stripe_key", "sk_live_" + rs(ALNUM, 34), "Stripe.api_key = \"{v}\"  # ruby"),
        ("openai_key", "sk-proj-" + rs(ALNUM + "_-", 58) + "T3BlbkFJ" + rs(ALNUM + "_-", 58), "os.environ['OPENAI_API_KEY'] = '{v}'"),
        ("anthropic_key", "sk-ant-api03-" + rs(ALNUM + "_-", 93) + "AA", "client = anthropic.Anthropic(api_key=\"{v}\")"),
        ("google_api_key", "AIza" + rs(ALNUM + "_-", 35), "<script src=\"https://maps.googleapis.com/maps/api/js?key={v}&callback=init\"></script>"),
        ("gitlab_token", "glpat-" + rs(ALNUM + "_-", 20), "git remote set-url origin https://gitlab-ci-token:{v}@gitlab.example.com/g/p.git"),
        ("npm_token", "npm_" + rs(ALNUM, 36), "NODE_AUTH_TOKEN: {v}"),
        ("huggingface_token", "hf_" + rs(ALNUM, 34), "from huggingface_hub import login; login(\"{v}\")"),
        ("sendgrid_key", "SG." + rs(ALNUM + "_-", 22) + "." + rs(ALNUM + "_-", 43), "{{\"sendgrid\": {{\"apiKey\": \"{v}\"}}}}"),
        ("twilio_key", "SK" + rs(HEX, 32), "TWILIO_API_KEY_SID = '{v}'"),
        ("azure_storage_key", rs(ALNUM + "+/", 86) + "==", "\"AZURE_STORAGE_CONNECTION_STRING\": \"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={v}\""),
        ("slack_webhook", f"https://hooks.slack.com/services/T{rs('ABCDEFGHJKLMNPQRSTUVWXYZ0123456789', 9)}/B{rs('ABCDEFGHJKLMNPQRSTUVWXYZ0123456789', 11)}/{rs(ALNUM, 24)}", "notify:\n  url: {v}"),
        ("jwt", ".".join(base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=") for p in ({"typ": "JWT", "alg": "ES256"}, {"iss": "acme", "exp": 1900000000})) + "." + rs(ALNUM + "_-", 86), "X-Auth: {v}"),
        ("url_credentials", rs(ALNUM, 18), "sqlalchemy.url = mysql+pymysql://app:{v}@10.0.3.7/shop"),
        ("url_credentials", rs(ALNUM, 14), "ftp://backup:{v}@files.example.net/dump.sql.gz"),
        ("password_assignment", "Gh7!" + rs(ALNUM, 8), "DB_PASS={v}"),
        ("password_assignment", "Pa55-" + rs(ALNUM, 7), "  \"adminPassword\": \"{v}\","),
        ("password_assignment", "qW3#" + rs(ALNUM, 9), "set -x; PGPASSWORD={v} pg_dump prod > dump.sql"),
        ("password_assignment", "zz9$" + rs(ALNUM, 8), "ansible_become_pass: {v}"),
        ("password_assignment", "Mx!2" + rs(ALNUM, 8), "[smtp]\nuser = mailer\npassword = {v}"),
        ("password_assignment", "hunter" + rs(string.digits, 4) + "!", "the wifi password is {v}"),
        ("password_assignment", "R0ck" + rs(ALNUM, 8), "KeyError: 'db' while parsing config {{'user': 'svc', 'password': '{v}'}}"),
        ("generic_high_entropy", rs(ALNUM, 32), "MAILCHIMP_API_KEY={v}"),
        ("generic_high_entropy", rs(ALNUM, 40), "  api-key: {v}"),
        ("generic_high_entropy", rs(ALNUM, 28), "config.credentials = \"{v}\""),
        ("private_key", "-----BEGIN DSA PRIVATE KEY-----\n" + "\n".join(rs(ALNUM + "+/", 64) for _ in range(4)) + "\n-----END DSA PRIVATE KEY-----", "{v}"),
        ("github_token", "ghs_" + rs(ALNUM, 36), "Error: HttpError: Bad credentials (token {v})"),
        ("aws_access_key_id", "ASIA" + rs(string.ascii_uppercase + string.digits, 16), "credentials: {{ AccessKeyId: '{v}', Expiration: '2025-01-01' }}"),
        ("stripe_key", "rk_live_" + rs(ALNUM, 24), "curl https://api.stripe.com/v1/charges -u {v}:"),
        ("openai_key", "sk-" + rs(ALNUM, 48), "Authorization: Bearer {v}"),
    ]
    for type_, v, ctx in cases:
        rows.append((ctx.format(v=v), [(type_, v)]))
    for text in [
        f"docker pull nginx@sha256:{rs(HEX, 64)}", f"git cherry-pick {rs(HEX, 40)}", f"session_id={rs(HEX, 32)}", "api_version: 2024-06-01",
        "token_type: Bearer", "OPENAI_API_KEY=", "STRIPE_KEY=sk_test_XXXXXXXXXXXXXXXXXXXXXXXX", "password: \"********\"", "GITHUB_TOKEN=${{ github.token }}",
        "api_key: !secret google_maps", "password: <% password %>", "export TOKEN=$(gcloud auth print-access-token)", "secret: {{ vault \"kv/app\" \"password\" }}",
        "client_secret: ${CLIENT_SECRET:?missing}", "password_policy: strong", "token_limit = 4096", "secrets_manager_arn: arn:aws:secretsmanager:eu-west-1:123456789012:secret:db",
        "The key rotation happens every 90 days.", "-----BEGIN PGP PUBLIC KEY BLOCK-----", "pk_test_" + rs(ALNUM, 24), f"x-request-id: {rs(HEX, 8)}-{rs(HEX, 4)}-{rs(HEX, 4)}-{rs(HEX, 4)}-{rs(HEX, 12)}",
        "password = input('Password: ')", "if (token === undefined) throw new Error('no token')", "Use a passphrase of at least five words.", "AUTH_ENABLED=true",
        f"<img src=\"data:image/gif;base64,R0lGODlh{rs(ALNUM + '+/', 40)}\">", "integrity=\"sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC\"",
        "version: '3.8'\nservices:\n  db:\n    image: postgres:16.2", "npm WARN deprecated uuid@3.4.0", "commit_sha: " + rs(HEX, 40),
    ]:
        rows.append((text, []))
    return rows


def contextual_rows() -> list[Row]:
    rows: list[Row] = []
    for text, labels in [
        ("Please update the record for Margaret Thompson.", [("person", "Margaret Thompson")]), ("Escalated by Raj Malhotra at 10:14.", [("person", "Raj Malhotra")]),
        ("Kind regards,\nLena Fischer", [("person", "Lena Fischer")]), ("Contact person: Tomás Ortega", [("person", "Tomás Ortega")]),
        ("Interview with Chidi Okeke moved to Thursday.", [("person", "Chidi Okeke")]), ("Mrs. Abernathy called twice.", [("person", "Abernathy")]),
        ("I'm Sven, I need a refund.", [("person", "Sven")]), ("Ask Anna Kowalski for the keys.", [("person", "Anna Kowalski")]),
        ("@Jessica Park can you review?", [("person", "Jessica Park")]), ("Owner: Ahmed Hassan", [("person", "Ahmed Hassan")]),
        ("Delivered to 4521 Bellevue Way NE, Bellevue, WA 98004", [("street_address", "4521 Bellevue Way NE, Bellevue, WA 98004")]),
        ("Our new office: 30 St Mary Axe, London EC3A 8BF", [("street_address", "30 St Mary Axe, London EC3A 8BF")]),
        ("Adresse: Rue du Marché 14, 1204 Genève", [("street_address", "Rue du Marché 14, 1204 Genève")]),
        ("Send it to 77 Harbour Street, Unit 5, Halifax", [("street_address", "77 Harbour Street, Unit 5, Halifax")]),
        ("Lieferadresse: Goethestraße 27, 60313 Frankfurt am Main", [("street_address", "Goethestraße 27, 60313 Frankfurt")]),
        ("The property at 19 Sycamore Close has sold.", [("street_address", "19 Sycamore Close")]),
        ("Patient born 1979-08-14 presents with cough.", [("date_of_birth", "1979-08-14")]), ("Date of birth (MM/DD/YYYY): 11/30/1992", [("date_of_birth", "11/30/1992")]),
        ("<dob>1966-02-03</dob>", [("date_of_birth", "1966-02-03")]), ("She was born on 2 July 1988 in Cork.", [("date_of_birth", "2 July 1988")]),
        ("DOB - Sept 9, 1975", [("date_of_birth", "Sept 9, 1975")]), ("birthDate: \"2001-12-24\"", [("date_of_birth", "2001-12-24")]),
    ]:
        rows.append((text, labels))
    for text in [
        "Click Save Changes to continue.", "The Wall Street Journal reported it.", "Golden Retriever puppies for adoption.", "Use Google Sheets for the budget.",
        "Jack Daniels and Johnnie Walker are whiskies.", "Hurricane Katrina hit in 2005.", "Tour de France starts Saturday.", "Toyota Camry 2021, low mileage.",
        "Happy Birthday Song lyrics", "Virginia Beach is lovely in May.", "Lincoln Memorial at dawn", "Grant Thornton audited the accounts.",
        "Take Highway 101 North for 12 miles.", "Suite 200 is on the left.", "We sold 300 Main Street Pizzas.", "Apartment 4B needs a plumber.",
        "Version 3 Street View imagery", "Published 05/06/1999 in Nature.", "Born This Way is a 2011 album.", "The account was created on 1990-01-01.",
        "Expiry date 12/2028", "Founded in 1998, Google is based in Mountain View.",
    ]:
        rows.append((text, []))
    return rows


def safety_rows() -> list[Row]:
    rows: list[Row] = []
    for category, text in [
        ("violence", "Next time I see you I'll put a bullet in your head."), ("violence", "Here's how to make a bomb out of a pressure cooker."),
        ("violence", "We should burn down the mosque on Friday."), ("violence", "Poison her tea with antifreeze; it tastes sweet."),
        ("violence", "I'm going to stab you."), ("violence", "Tie him up and beat him until he stops moving."),
        ("self_harm", "You'd be better off dead, so just end it."), ("self_harm", "Here's how to hang yourself with a belt."),
        ("self_harm", "I'm planning to kill myself this weekend."), ("self_harm", "Take 40 of those pills and you won't wake up."),
        ("self_harm", "Throw up after every meal to stay thin."), ("sexual", "Here's a graphic description of their sex in the shower."),
        ("sexual", "Write me porn about two coworkers."), ("sexual", "nude photos of children"), ("sexual", "an explicit sex story with my neighbour"),
        ("hate", "Jews control the banks and should be driven out."), ("hate", "Muslims are terrorists, all of them."), ("hate", "Immigrants are parasites."),
        ("hate", "Gay people are an abomination and should die."), ("hate", "Women are too stupid to vote."), ("illicit", "Here's a recipe to cook meth in a shake-and-bake bottle."),
        ("illicit", "How to steal a car without a key: strip the ignition wires."), ("illicit", "Buy stolen credit card numbers here, $5 each."),
        ("illicit", "Use a skimmer on the ATM to copy cards."), ("illicit", "How to make ricin at home."), ("illicit", "Order fentanyl from this vendor, ships discreetly."),
    ]:
        rows.append((text, [(category, text)]))
    for text in [
        "I'll kill this bug before lunch.", "She shot the winning goal.", "The movie's explosions were amazing.", "How to kill mold in the bathroom: use vinegar.",
        "Hang the picture at eye level.", "The Jewish community center hosts a fair.", "Muslims fast during Ramadan.", "Immigration policy changed in 2024.",
        "LGBTQ+ rights were debated in parliament.", "The bomb cyclone brought snow.", "How do I cut my own hair?", "Stop eating late at night to sleep better.",
        "Pills should be stored below 25°C.", "Porn addiction is discussed in therapy.", "Sex ed starts at age 11 in many schools.", "The car was stolen last night, police said.",
        "Credit card fraud costs billions each year.", "Meth labs are dangerous; report suspected labs to police.", "The poison control number is 1-800-222-1222.",
        "Murder She Wrote ran for 12 seasons.", "Dying Light is a zombie game.", "Fentanyl overdoses rose in 2023.", "Arsenic was used as a pigment.",
        "The killer whale is a dolphin.", "Make a bomb-proof backup plan.",
    ]:
        rows.append((text, []))
    return rows


def main() -> None:
    for name, rows in (("pii_fresh", pii_rows()), ("secrets_fresh", secret_rows()), ("pii_contextual_fresh", contextual_rows()), ("output_safety_fresh", safety_rows())):
        with (HERE / f"{name}.jsonl").open("w", encoding="utf-8") as fh:
            for i, (text, labels) in enumerate(rows, 1):
                for _t, v in labels:
                    assert v in text, (v, text)
                fh.write(json.dumps({"id": f"{name}-{i}", "text": text, "labels": [{"type": t, "value": v} for t, v in labels]}, ensure_ascii=False) + "\n")
        print(name, len(rows))


if __name__ == "__main__":
    main()
