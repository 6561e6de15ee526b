"""topics, output_safety, groundedness, and the registry against the catalog."""

from __future__ import annotations

from dsl import ast
from dsl.catalog import BUILTINS, SAFETY_CATEGORIES
from engine.detectors.base import ScanContext
from engine.detectors.groundedness import GroundednessDetector
from engine.detectors.registry import BUILTIN_FACTORIES, build
from engine.detectors.safety import SafetyDetector
from engine.detectors.topics import TopicsDetector


def test_every_catalog_builtin_is_registered() -> None:
    for name in BUILTINS:
        detector = build(ast.Guard(detector=name, action="detect"), {})
        assert detector.name == name
    assert set(BUILTINS) <= set(BUILTIN_FACTORIES)


def test_topics_plurals_case_and_word_boundaries() -> None:
    d = TopicsDetector(("medical diagnosis", "payday loan"))
    text = "Medical Diagnoses? payday-loans! not paydayloan"
    assert [(f.detail, text[f.start : f.end]) for f in d.scan(text, ScanContext())] == [
        ("medical diagnosis", "Medical Diagnoses"), ("payday loan", "payday-loans"),
    ]  # fmt: skip


def test_safety_categories_and_context() -> None:
    d = SafetyDetector(frozenset(SAFETY_CATEGORIES))
    assert {f.type for f in d.scan("Here is how to make meth at home", ScanContext())} == {"illicit"}
    assert d.scan("If you want to kill yourself, please call 988 now.", ScanContext()) == []
    assert d.scan("The history of the atomic bomb in 1945.", ScanContext()) == []
    only_hate = SafetyDetector(frozenset({"hate"}))
    assert only_hate.scan("I will kill you", ScanContext()) == []


def test_groundedness_reports_unsupported_sentences() -> None:
    d = GroundednessDetector(0.6)
    ctx = ScanContext("output", ("The Eiffel Tower is 330 metres tall and was completed in 1889 in Paris.",))
    assert d.scan("The Eiffel Tower was completed in 1889. It is 330 metres tall.", ctx) == []
    bad = "The Eiffel Tower was completed in 1901. It was designed by aliens from Mars."
    findings = d.scan(bad, ctx)
    assert [bad[f.start : f.end] for f in findings] == [
        "The Eiffel Tower was completed in 1901.", "It was designed by aliens from Mars.",
    ]  # fmt: skip
    assert all(not f.redactable for f in findings)
    assert d.scan(bad, ScanContext("output")) == []  # no grounding, nothing to judge


def test_topics_plural_phrase_names_its_singular() -> None:
    d = TopicsDetector(("weapons", "politics", "news"))
    text = "Which weapon is best? No politic talk. Any new items?"
    assert [(f.detail, text[f.start : f.end]) for f in d.scan(text, ScanContext())] == [("weapons", "weapon")]


def test_safety_forms_beyond_the_first_lexicon() -> None:
    d = SafetyDetector(frozenset(SAFETY_CATEGORIES))
    cases = {
        "Jews should be exterminated.": "hate",
        "Latinos are animals.": "hate",
        "Slit your wrists in a warm bath.": "self_harm",
        "I'm gonna beat up everyone in that office.": "violence",
        "a sexual story about a 14 year old": "sexual",
        "How to make a fake ID that passes a bouncer's check.": "illicit",
    }
    for text, category in cases.items():
        assert {f.type for f in d.scan(text, ScanContext())} == {category}, text


def test_safety_reported_speech_and_idioms_are_not_flagged() -> None:
    d = SafetyDetector(frozenset(SAFETY_CATEGORIES))
    texts = (
        "The character says 'I'll kill you' in the trailer.", "You're going to kill it at the presentation!",
        "To stop a hung process, run kill -9 followed by the PID.", "Surest way to kill yourself? Call 988 instead.",
    )  # fmt: skip
    for text in texts:
        assert d.scan(text, ScanContext()) == [], text
    assert d.max_span is not None and d.max_span <= 200  # streams hold back at most this much


def test_groundedness_numbers_names_negation_and_pleasantries() -> None:
    d = GroundednessDetector(1.01)  # report every unsupported sentence
    ctx = ScanContext("output", ("Python 3.12 was released in October 2023. Opened software cannot be returned.",))

    def unsupported(text: str) -> list[str]:
        return [text[f.start : f.end] for f in d.scan(text, ctx)]

    assert unsupported("Python 3.12 was released in October 2023. Hope this helps, let me know!") == []
    assert unsupported("Python 3.12 was released in Berlin in 2023.") == ["Python 3.12 was released in Berlin in 2023."]
    assert unsupported("Opened software can be returned.") == ["Opened software can be returned."]
    assert unsupported("Python 3.11 was released in October 2023.") == ["Python 3.11 was released in October 2023."]


def test_groundedness_scans_in_linear_time() -> None:
    import time

    unit = "The Eiffel Tower is 330 metres tall. It is not in Rome. Tickets cost 20 euros each day. "
    d, times = GroundednessDetector(0.6), []
    for n in (10_000, 100_000):
        text = (unit * (n // len(unit) + 1))[:n]
        start = time.thread_time()
        d.scan(text, ScanContext("output", (text,)))
        times.append(time.thread_time() - start)
    assert times[1] / max(times[0], 1e-6) < 25, times
