"""Answers that are right, not only cited: spans that fit the document, the chooser, citations
checked against the passage they point at, and ``lamina eval answers``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lamina.config import RagSettings
from lamina.data.collection import Collection
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.types import Hit
from lamina.engine.model import EngineModel
from lamina.errors import LaminaError
from lamina.evals.answers import AnswerCase, contains, judge, load_cases
from lamina.models.types import Usage
from lamina.rag.answer import LAZY_STOP, Answer, Answerer
from lamina.rag.assemble import AnswerAssembler
from lamina.rag.choose import choose_answer, expected_kind
from lamina.rag.context import Source
from lamina.rag.spans import spans_of
from lamina.rag.support import supports
from tests.cli_runner import lamina

INVOICE = """| | | Hours | Rate | Cost |
| --- | --- | --- | --- | --- |
| Parts | | | | 2,100 |
| Body Labor | | 2 | 150 | 300 |
| Sales Tax | | | 10.20% | 278.46 |"""

FORM = """| Insured name | Gabriel Diaz | | Year | 2022 |
| Policy # | POL-2022-555 | | Model | Grand Cherokee |"""

RECEIPT = """TECHMART ELECTRONICS
4567 Innovation Blvd
San Francisco, CA 94103

Cashier: Emily Rodriguez
Register: POS-07

RETURN POLICY
Returns within 30 days
Receipt required"""

PROSE = """What happens if an ingestion is interrupted?
Nothing is lost and nothing is duplicated. If the process is killed, simply run the same
`lamina ingest` command again: documents already written are skipped, and the run resumes."""


def _source(n: int, text: str) -> Source:
    return Source(n, Hit(f"c{n}", f"d{n}", f"/docs/{n}.txt", f"Doc {n}", [], None, text, 1.0), text)


def test_table_rows_carry_their_header_names() -> None:
    rows = [s.text for s in spans_of(1, 0, INVOICE)]
    assert "Body Labor: Hours 2, Rate 150, Cost 300" in rows
    assert "Sales Tax: Rate 10.20%, Cost 278.46" in rows


def test_key_value_rows_become_one_span_per_field() -> None:
    fields = [s.text for s in spans_of(1, 0, FORM)]
    assert fields == [
        "Insured name: Gabriel Diaz",
        "Year: 2022",
        "Policy #: POL-2022-555",
        "Model: Grand Cherokee",
    ]


def test_receipt_lines_are_fields_under_their_section_heading() -> None:
    fields = [s.text for s in spans_of(1, 0, RECEIPT)]
    assert "Cashier: Emily Rodriguez" in fields
    assert "RETURN POLICY: Returns within 30 days" in fields


def test_prose_is_cut_into_whole_sentences_and_questions_are_not_answers() -> None:
    sentences = [s.text for s in spans_of(1, 0, PROSE)]
    assert not any(s.endswith("?") for s in sentences)  # an FAQ's heading
    assert any(
        s.startswith("If the process is killed, simply run the same `lamina ingest` command")
        for s in sentences
    )


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("What is the hourly rate for body labor?", "Body Labor: Hours 2, Rate 150, Cost 300 [1]"),
        ("Who was the cashier?", "Cashier: Emily Rodriguez [2]"),
        ("How many days do I have to return an item?", "RETURN POLICY: Returns within 30 days [2]"),
        ("What is the street address of TechMart?", "TECHMART ELECTRONICS: 4567 Innovation Blvd [2]"),
    ],
)
def test_the_chooser_picks_the_span_that_answers(embedder: OnnxMiniLM, question: str, answer: str) -> None:
    sources = [_source(1, INVOICE), _source(2, RECEIPT), _source(3, PROSE)]
    chosen = choose_answer(question, sources, embedder)
    assert chosen is not None and chosen.text == answer


ITEMS = """Portable SSD 2TB
Thunderbolt 3 Compatible
STOR-2241 1 @ $289.00
Ergonomic Wireless Mouse
ACC-9012 1 @ $59.99"""

LABELS = """| Alt Order #: | SC-WINTER-2024 | | | Primary Contact: | | Sarah Johnson |
| -------------------- | ----------------------- | --- | --- | ------- | --- | --------- |"""


def test_a_line_naming_an_item_is_answered_with_the_lines_after_it(embedder: OnnxMiniLM) -> None:
    chosen = choose_answer("How much did the Portable SSD 2TB cost?", [_source(1, ITEMS)], embedder)
    assert chosen is not None and chosen.text.startswith("Portable SSD 2TB") and "$289.00" in chosen.text


def test_a_table_of_labels_alone_is_read_as_fields(embedder: OnnxMiniLM) -> None:
    assert "Primary Contact: Sarah Johnson" in [s.text for s in spans_of(1, 0, LABELS)]
    chosen = choose_answer("Who is the primary contact?", [_source(1, LABELS)], embedder)
    assert chosen is not None and chosen.text == "Primary Contact: Sarah Johnson [1]"


def test_no_span_sharing_a_word_with_the_question_is_no_answer(embedder: OnnxMiniLM) -> None:
    assert choose_answer("Will it snow in Oslo?", [_source(1, INVOICE)], embedder) is None


def test_what_a_question_asks_for() -> None:
    assert expected_kind("When was Windows 1.0 released?") == "date"
    assert expected_kind("How many dimensions does it have?") == "number"
    assert expected_kind("Who founded Microsoft?") == "name"
    assert expected_kind("What is AutoGen?") == "definition"
    assert expected_kind("What does EAFP stand for?") == "definition"
    assert expected_kind("Which function converts a struct_time to seconds?") == "identifier"
    assert expected_kind("Which PEP added exception groups?") == "number"
    assert expected_kind("What is the default timeout of the client?") == "value"


REFERENCE = """The numeric values of logging levels are given in the following table.

| Level | Numeric value |
| --- | --- |
| `WARNING` | 30 |
| `ERROR` | 40 |

The alignment options are:

| Option | Meaning |
| --- | --- |
| `'<'` | Forces the field to be left-aligned within the available space. |
| `'^'` | Forces the field to be centered within the available space. |

```
>>> logging.error("the ERROR level's numeric value")
```

EAFP
: Easier to ask for forgiveness than permission. This common Python coding style catches exceptions."""


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        # the row, not the sentence that introduces the table
        ("What is the numeric value of the ERROR logging level?", "`ERROR`: Numeric value 40 [1]"),
        # a quoted symbol is matched as written: words alone cannot tell '^' from '<'
        ("What does the '^' alignment option do?", "`'^'`: Meaning Forces the field to be centered"),
        # a definition list's entry is shown under its term
        ("What does EAFP mean?", "EAFP: Easier to ask for forgiveness than permission. [1]"),
    ],
)
def test_the_chooser_reads_reference_documentation(embedder: OnnxMiniLM, question: str, answer: str) -> None:
    chosen = choose_answer(question, [_source(1, REFERENCE)], embedder)
    assert chosen is not None and chosen.text.startswith(answer)
    assert chosen.evidence >= RagSettings().min_evidence


def test_quoted_tables_and_wrapped_list_items_keep_their_shape() -> None:
    quoted = "> | Option | Meaning |\n> | --- | --- |\n> | `'^'` | Forces the field to be centered. |"
    assert [s.text for s in spans_of(1, 0, quoted)] == ["`'^'`: Meaning Forces the field to be centered."]
    items = "* **PEP 680**: `tomllib` —\n  Support for parsing TOML\n* **PEP 654**: exception groups"
    texts = [s.text for s in spans_of(1, 0, items)]
    assert "* **PEP 680**: `tomllib` — Support for parsing TOML" in texts


def test_an_unanswered_question_is_not_found_with_the_closest_passages(embedder: OnnxMiniLM) -> None:
    """The passages share the question's topic but not what it asks (a count): the chooser's
    evidence stays under rag.min_evidence, and the answer says so, citing what may be relevant."""
    sources = [_source(1, REFERENCE), _source(2, PROSE)]
    question = "How many backup files does the rotating handler of the logging module keep by default?"
    chosen = choose_answer(question, sources, embedder)
    settings = RagSettings()
    assert chosen is not None and chosen.evidence < settings.min_evidence
    assembler = AnswerAssembler(question, sources, embedder, settings, LAZY_STOP)
    _, answer = assembler.finish("m", Usage())
    assert not answer.found and answer.grounded and not answer.extractive
    assert answer.answer.startswith("The sources do not say this. Possibly relevant: (1) ")
    assert answer.citations and answer.evidence == chosen.evidence
    case = AnswerCase("u", question, ())
    assert judge(case, answer, {}, 0.0).right  # refusing an unanswerable question is right


def test_a_base_model_answer_is_chosen_not_composed(sample_collection: Collection, llm: EngineModel) -> None:
    answerer = Answerer(sample_collection, llm, RagSettings())  # type: ignore[call-arg]
    assert answerer.chooses  # gemma-3-270m is a completion model
    _, request = answerer.prepare("How do I resume an ingestion that was interrupted?")
    assert request is None  # no model call
    answer = answerer.ask("How do I resume an ingestion that was interrupted?")
    assert "run the same `lamina ingest` command again" in answer.answer
    assert answer.extractive and answer.usage.total_tokens == 0
    assert [c.source.rsplit("/", 1)[-1] for c in answer.citations] == ["ingestion-faq.html"]
    assert len(answer.answer) <= 400
    refused = answerer.ask("What is the boiling point of liquid nitrogen at sea level?")
    assert not refused.grounded  # "nothing relevant" is unchanged


def test_a_claim_is_supported_only_by_a_passage_that_says_it() -> None:
    row = "Body Labor: Hours 2, Rate 150, Cost 300"
    assert supports(row, "The body labor rate is 150 per hour.")
    assert not supports(row, "The body labor rate is $1.50 per hour.")  # a misread number
    assert not supports(row, "Paint labor takes three hours.")
    assert supports("It costs 1,000.00 dollars.", "It costs 1000 dollars.")


def _assembler(embedder: OnnxMiniLM, *, chat: bool) -> AnswerAssembler:
    sources = [_source(1, "The headquarters are in Redmond, Washington."), _source(2, INVOICE)]
    settings = RagSettings()  # type: ignore[call-arg]
    return AnswerAssembler(
        "Where is the headquarters?", sources, embedder, settings, LAZY_STOP, stream_tokens=chat
    )


@pytest.mark.parametrize("chat", [False, True])
def test_a_wrong_marker_is_moved_to_the_passage_that_says_it(embedder: OnnxMiniLM, chat: bool) -> None:
    raw = "The headquarters are in Redmond, Washington [2]. Body labor costs 300 [2]."
    for pieces in ([raw], list(raw)):
        assembler = _assembler(embedder, chat=chat)
        shown = "".join(assembler.feed(p) for p in pieces)
        tail, answer = assembler.finish("m", Usage(1, 1))
        assert shown + tail == answer.answer
        assert "Redmond, Washington [2]" not in answer.answer
        assert "[1]" in answer.answer.split("Body")[0]  # re-attributed to the passage that says it
        assert answer.answer.endswith("Body labor costs 300 [2].")


@pytest.mark.parametrize("chat", [False, True])
def test_a_marker_no_passage_supports_is_never_shipped(embedder: OnnxMiniLM, chat: bool) -> None:
    assembler = _assembler(embedder, chat=chat)
    raw = "The headquarters are in Redmond, Washington [1]. Body labor costs $1.50 per hour [2]."
    shown = assembler.feed(raw)
    tail, answer = assembler.finish("m", Usage(1, 1))
    assert "1.50 per hour [2]" not in shown + tail
    assert answer.answer.startswith("The headquarters are in Redmond, Washington [1].")


# the eval ---------------------------------------------------------------------------------------
def test_contains_ignores_case_markers_and_emphasis() -> None:
    assert contains(
        "Run the same **`lamina ingest`** command [1] again.", [("same", "lamina ingest", "again")]
    )
    assert not contains("Run lamina ingest.", [("same", "lamina ingest")])


def test_a_right_answer_is_concise_and_its_citation_holds_the_answer() -> None:
    case = AnswerCase("q", "What is the rate?", (("150",),))
    long = Answer("The rate is 150. [1] " + "More words. " * 40, [], "m")
    assert not judge(case, long, {}, 0.0).right  # a pasted passage is not an answer
    short = Answer("Body Labor: Rate 150 [1]", [], "m")
    result = judge(case, short, {1: INVOICE}, 0.0)
    assert result.right and not result.citation_has_answer  # it cites nothing
    unanswerable = judge(
        AnswerCase("n", "Capital of Australia?", ()), Answer("…", [], "m", grounded=False), {}, 0
    )
    assert unanswerable.right and unanswerable.nothing_relevant


def test_a_malformed_dataset_line_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text('{"question": "ok?", "answers": ["x"]}\n{"answers": ["y"]}\n')
    with pytest.raises(LaminaError, match=r"set\.jsonl:2"):
        load_cases(path)


def test_eval_answers_command_reports_every_question(tmp_path: Path, sample_collection: Collection) -> None:
    dataset = tmp_path / "set.jsonl"
    rows = [
        {
            "id": "resume",
            "question": "How do I resume an interrupted ingestion?",
            "answers": [["same", "again"]],
        },
        {"id": "none", "question": "What is the boiling point of liquid nitrogen?", "answers": []},
    ]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data_dir = sample_collection.settings.data_dir
    proc = lamina(
        "--data-dir", str(data_dir), "eval", "answers", "-d", str(dataset), "-c", "sample", "--json"
    )
    result = json.loads(proc.stdout)
    assert [r["id"] for r in result["results"]] == ["resume", "none"]
    assert result["totals"]["right"] == 2 and result["right_and_cited_where_it_stands"] == 1
    assert {"cited", "citation_has_answer", "extractive", "nothing_relevant", "not_found", "empty"} <= set(
        result["totals"]
    )
    bars = [row["min_evidence"] for row in result["tradeoff"]]
    assert result["min_evidence"] in bars and bars == sorted(bars)
    assert all(
        row["right_kept"] + row["right_lost"] == result["tradeoff"][0]["right_kept"]
        for row in result["tradeoff"]
    )
