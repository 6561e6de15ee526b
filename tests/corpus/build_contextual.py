# ruff: noqa: E501  (case tables read best one case per line)
"""Builds pii_contextual.jsonl: person, street_address, date_of_birth, and their hard negatives.

Written before the contextual detectors were reworked, from its own name and
street lists (not the detector's data files): names of many cultures in chat,
email, tickets, JSON and logs, with and without cues; US, UK, Canadian,
Australian, German and French addresses; dates of birth after cues in several
formats. Hard negatives: capitalised phrases that are not people (brands,
places, titles, companies named after people), numbers before capitalised
words that are not addresses, dates that are not birth dates.
Run: python -m tests.corpus.build_contextual
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
R = random.Random(5150)

GIVEN = ["Amara", "Bjorn", "Chiara", "Dmitri", "Esperanza", "Farah", "Gideon", "Hiroshi", "Ingrid", "Jamal", "Kavya", "Lorenzo", "Mei", "Nikolai", "Oluwaseun",
         "Parveen", "Quentin", "Rosalind", "Santiago", "Tamsin", "Ulrich", "Valentina", "Wanjiru", "Xavier", "Yusuf", "Zofia", "Aoife", "Bartholomew", "Camille",
         "Declan", "Elif", "Fatima", "Gareth", "Hannah", "Isabella", "Joaquin", "Keiko", "Liam", "Magdalena", "Nadia", "Oscar", "Priyanka", "Rashid", "Sienna",
         "Tobias", "Ursula", "Viktor", "Wendy", "Yara", "Zainab", "Emily", "James", "Sophie", "Daniel", "Olivia", "Ahmed", "Lucia", "Chen", "Kofi", "Anika"]
FAMILY = ["Okonkwo", "Lindqvist", "Ferraro", "Volkov", "Castellanos", "Haddad", "Abernathy", "Takahashi", "Johansson", "Whitfield", "Raghunathan", "Bellucci",
          "Zhou", "Petrov", "Adeyemi", "Chaudhry", "Moreau", "Ashworth", "Villanueva", "Pennington", "Schreiber", "Romano", "Kamau", "Dubois", "Demir",
          "Nowak", "Gallagher", "Fitzgerald", "Lefebvre", "Brennan", "Yilmaz", "Mansour", "Llewellyn", "Kowalczyk", "Sato", "Murphy", "Novak", "Hernandez",
          "Nguyen", "Mensah", "Smith", "Garcia", "Kim", "Patel", "Rossi", "Müller", "O'Sullivan", "García-López", "van der Berg", "Mbeki"]

PERSON_CTX = [
    "Hi, my name is {v} and I can't log in.", "Please forward this to {v} in accounting.", "{v} called about the delayed shipment.",
    "Dear {v},\nThank you for your application.", "Best regards,\n{v}", "Customer: {v}\nIssue: refund not received", "\"full_name\": \"{v}\",",
    "Meeting notes: {v} will own the migration.", "Can you draft a reply to {v}? She was upset about the bill.", "Assigned to {v} on 2024-03-02.",
    "I spoke with {v} yesterday and he agreed.", "Patient {v} reports mild headaches.", "Thanks {v}, that fixed it!", "cc: {v}",
    "Ask {v} whether the contract was signed.", "From: {v} <{e}>", "{v} (Head of Sales) approved the discount.", "This is {v} from the Leeds office.",
    "Signed: {v}", "name={v} role=admin", "The tenant, {v}, has paid through June.", "Our new hire {v} starts Monday.", "Mr. {f} will join at 3pm.",
    "Dr. {f} reviewed the scan.", "Ms. {f} asked for a copy.", "Please ask Prof. {f} about the grant.",
]
PERSON_NEG = [
    "Apple Music and Google Drive are both down.", "We flew from New York to San Francisco.", "The Golden Gate Bridge was foggy.", "Microsoft Teams keeps crashing.",
    "Read the Terms of Service before signing.", "Happy New Year from the whole team!", "The Rolling Stones played Hyde Park.", "Amazon Web Services had an outage in US East.",
    "Morgan Stanley and Goldman Sachs reported earnings.", "Ford Motor Company recalled 10,000 cars.", "Victoria Station is closed this weekend.",
    "The Jordan River flows south.", "We use Visual Studio Code and Docker Desktop.", "Black Friday sales start early.", "Grace Period ends on Monday.",
    "Summer Camp registration is open.", "Mark Complete when you are done.", "Will Smith-style memes are trending.", "Read Chapter Seven before class.",
    "Christian Dior released a new fragrance.", "The Hope Diamond is in the Smithsonian.", "Joy Division reissued their album.", "Faith Hill Road is closed.",
    "Customer Success Manager is a new role.", "Machine Learning Engineer, remote.", "The Supreme Court ruled on Tuesday.", "Set Default Branch to main.",
    "Pull Request Template updated.", "Open Source Summit is in Vienna.", "Please review the Release Notes.", "The Great Barrier Reef is bleaching.",
    "Election Day is in November.", "Sales Report Q3 attached.", "The Lord of the Rings is long.", "Harvard Business Review had a piece on it.",
    "St. Patrick's Day parade route.", "Washington State passed the bill.", "The Mercedes Benz Arena holds 17,000.", "Use Ctrl Shift P to open the palette.",
    "Stanford University admitted 4%.",
]

STREETS = ["Maple Avenue", "Oak Street", "Birchwood Drive", "Sunset Boulevard", "Harbor View Road", "Pine Ridge Lane", "Willow Court", "Lakeshore Drive",
           "Chestnut Place", "Riverside Terrace", "Magnolia Way", "Kingsway", "Cedar Hill Road", "Elmwood Avenue", "Highland Parkway"]
CITIES = [("Portland", "OR", "97205"), ("Austin", "TX", "78701"), ("Columbus", "OH", "43215"), ("Denver", "CO", "80202"), ("Raleigh", "NC", "27601"),
          ("Madison", "WI", "53703"), ("Tucson", "AZ", "85701"), ("Boise", "ID", "83702")]
ADDR_CTX = ["Please ship it to {v}.", "Billing address: {v}", "I moved to {v} last month.", "\"address\": \"{v}\",", "Deliver to {v} between 9 and 5.",
            "The office is at {v}, second floor.", "Return address:\n{v}", "ship_to={v}"]
OTHER_ADDR = [
    "221B Baker Street, London NW1 6XE", "14 Carlton Road, Manchester M16 8BB", "350 Queen Street West, Toronto, ON M5V 2A2", "88 George St, Sydney NSW 2000",
    "Hauptstraße 12, 10115 Berlin", "Schillerstr. 4, 80336 München", "12 rue de la Paix, 75002 Paris", "7 Avenue des Champs-Élysées, 75008 Paris",
    "1600 Pennsylvania Avenue NW, Washington, DC 20500", "PO Box 4432, Springfield, MO 65801", "4 Privet Drive, Little Whinging, Surrey",
    "1 Infinite Loop, Cupertino, CA 95014", "500 5th Ave, New York, NY 10110", "77 Massachusetts Ave, Cambridge, MA 02139",
]
ADDR_NEG = [
    "We have 3 Oak Park offices and 12 people.", "Turn left on Main Street after the bank.", "Section 230 of the Act is contested.", "Route 66 runs through Tucson.",
    "Chapter 11 Court filings rose.", "I ate 2 Big Macs.", "Version 2 Drive sync is faster.", "The 5 Star Hotel on Broadway.", "Top 10 Park Rangers of 2023.",
    "We need 4 Lane closures for the work.", "Windows 11 Pro costs $199.", "Call 911 Way too late.", "Step 3 Place the tray in the oven.", "Highway patrol closed I-95.",
    "Apollo 13 Mission Control.", "Look at page 42 Court records.", "Gate 7 Terminal B is closed.", "Deploy 2 Street-level cameras.", "Sprint 14 Review notes.",
    "The Oak Street Bistro opened.", "Baker Street is a Gerry Rafferty song.", "Flight 370 Lane Air.",
]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
DOB_CTX = ["DOB: {v}", "Date of birth: {v}", "I was born on {v}.", "born {v} in Lagos", "\"dob\": \"{v}\"", "birth_date: {v}", "d.o.b. {v}", "Birthdate {v}",
           "Patient DOB {v}, MRN 55812", "My birthday is {v}, so I qualify.", "DOB={v}&zip=94107", "Date of Birth\n{v}"]
DOB_NEG = [
    "Release date: 04/12/2025.", "Invoice date 2021-03-04, due 2021-04-03.", "Card expires 12/27.", "The company was born out of a hackathon in 2010.",
    "Born-again Linux users love it.", "Birthday party on Saturday at 3pm.", "Last login 2024-05-06 10:22.", "Contract start 01.02.2023.",
    "The event was on March 3, 2019.", "Meeting moved to 15 June 2024.", "Uploaded 07/08/2022 by admin.", "Backup from 2023-11-30 restored.",
    "I was born to run, said Springsteen.", "Date of the next review: 2025-01-15.", "Delivery date 22/09/2024.", "Birth rate fell in 2022.",
    "Her novel was born in 1999 as a short story draft.", "Issued on 3 Feb 2021, valid until 3 Feb 2031.", "the date is 2024-02-29", "Unix epoch began 1970-01-01.",
]


# The first 19 cases (they were built by build.py before this file existed).
DOB_CASES = [("Patient DOB: 04/12/1985, allergies none.", "04/12/1985"), ("I was born on March 3, 1990 in Leeds.", "March 3, 1990"), ("date of birth: 1978-11-02", "1978-11-02"), ("Birthday 12.05.2001", "12.05.2001")]
ADDR_CASES = [("Ship to 1234 Elm Street, Springfield, IL 62704 please.", "1234 Elm Street, Springfield, IL 62704"), ("Office: 55 Water St., New York", "55 Water St., New York"), ("I live at 742 Evergreen Terrace", "742 Evergreen Terrace"), ("Return to 10 Downing Street", "10 Downing Street")]
PERSON_CASES = [("My name is Sarah Connor and I need help.", "Sarah Connor"), ("Dear Michael, thanks for the update.", "Michael"), ("Please ask Priya Sharma to review.", "Priya Sharma"), ("Regards, Thomas Müller", "Thomas"), ("Dr. Watson will see you now.", "Watson"), ("Forward this to John Smith in accounting.", "John Smith")]
CONTEXTUAL_NEGATIVES = ["The Eiffel Tower opened in 1889.", "Grace Period ends on Monday.", "Main Street is closed for repairs.", "Release date: 04/12/2025.", "Version 2 of Elm Street Software."]
ORDINAL = {1: "st", 2: "nd", 3: "rd"}


def date() -> str:
    y, m, d = R.randint(1940, 2006), R.randint(1, 12), R.randint(1, 28)
    style = R.choice(["iso", "us", "eu", "dot", "long", "daymonth", "ordinal", "abbr"])
    return {
        "iso": f"{y}-{m:02d}-{d:02d}", "us": f"{m:02d}/{d:02d}/{y}", "eu": f"{d:02d}/{m:02d}/{y}", "dot": f"{d:02d}.{m:02d}.{y}",
        "long": f"{MONTHS[m - 1]} {d}, {y}", "daymonth": f"{d} {MONTHS[m - 1]} {y}", "ordinal": f"{d}{ORDINAL.get(d % 10 if d not in (11, 12, 13) else 0, 'th')} of {MONTHS[m - 1]} {y}", "abbr": f"{d} {MONTHS[m - 1][:3]} {y}",
    }[style]


def main() -> None:
    rows: list[dict[str, object]] = []
    for _ in range(110):
        f, g = R.choice(FAMILY), R.choice(GIVEN)
        ctx = R.choice(PERSON_CTX)
        full = f"{g} {f}"
        value = f if "{f}" in ctx else full
        text = ctx.format(v=full, f=f, e=f"{g.lower()}@example.org")
        labels = [{"type": "person", "value": value}] + ([{"type": "email", "value": f"{g.lower()}@example.org"}] if "{e}" in ctx else [])
        rows.append({"text": text, "labels": labels})
    for text in PERSON_NEG:
        rows.append({"text": text, "labels": []})
    for _ in range(45):
        city, state, zip_ = R.choice(CITIES)
        v = f"{R.randint(1, 9999)} {R.choice(STREETS)}" + R.choice(["", f", Apt {R.randint(1, 40)}", f" #{R.randint(100, 999)}"]) + R.choice(["", f", {city}, {state} {zip_}", f", {city} {state}"])
        rows.append({"text": R.choice(ADDR_CTX).format(v=v), "labels": [{"type": "street_address", "value": v}]})
    for v in OTHER_ADDR:
        rows.append({"text": R.choice(ADDR_CTX).format(v=v), "labels": [{"type": "street_address", "value": v}]})
    for text in ADDR_NEG:
        rows.append({"text": text, "labels": []})
    for _ in range(60):
        v = date()
        rows.append({"text": R.choice(DOB_CTX).format(v=v), "labels": [{"type": "date_of_birth", "value": v}]})
    for text in DOB_NEG:
        rows.append({"text": text, "labels": []})
    # mixed records: several types in one text
    for _ in range(15):
        g, f, v = R.choice(GIVEN), R.choice(FAMILY), date()
        city, state, zip_ = R.choice(CITIES)
        addr = f"{R.randint(1, 999)} {R.choice(STREETS)}, {city}, {state} {zip_}"
        text = f"Name: {g} {f}\nDOB: {v}\nAddress: {addr}"
        rows.append({"text": text, "labels": [{"type": "person", "value": f"{g} {f}"}, {"type": "date_of_birth", "value": v}, {"type": "street_address", "value": addr}]})
    for cases, type_ in ((DOB_CASES, "date_of_birth"), (ADDR_CASES, "street_address"), (PERSON_CASES, "person")):
        rows += [{"text": text, "labels": [{"type": type_, "value": v}]} for text, v in cases]
    rows += [{"text": text, "labels": []} for text in CONTEXTUAL_NEGATIVES]
    with (HERE / "pii_contextual.jsonl").open("w", encoding="utf-8") as fh:
        for i, row in enumerate(rows, 1):
            for label in row["labels"]:  # type: ignore[attr-defined]
                assert label["value"] in row["text"], row
            fh.write(json.dumps({"id": f"pii_contextual-{i}", **row}, ensure_ascii=False) + "\n")
    print("pii_contextual", len(rows))


if __name__ == "__main__":
    main()
