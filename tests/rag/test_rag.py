"""Grounded answers on the bundled samples with the real default model."""

from __future__ import annotations

import numpy as np
import pytest

from lamina.config import RagSettings
from lamina.data.collection import Collection
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.store.lance import LanceStore
from lamina.data.types import Hit
from lamina.engine.model import EngineModel
from lamina.errors import PromptTooLong
from lamina.evals.grounding import _equal_error
from lamina.models.prompts import FENCE_NOTE
from lamina.models.types import Usage
from lamina.rag.answer import LAZY_STOP, Answer, Answerer
from lamina.rag.assemble import AnswerAssembler, split_stops
from lamina.rag.citations import cited_numbers, drop_invalid_markers
from lamina.rag.context import Source, pack
from lamina.rag.fewshot import Example, FewShotExamples

QUESTIONS = [
    "Which database stores the vectors?",
    "What happens if an ingestion is interrupted?",
    "How are documents split into chunks?",
]


@pytest.fixture(scope="module")
def answerer(sample_collection: Collection, llm: EngineModel) -> Answerer:
    """The model writes the answer (the default for base models is to choose it: test_answers)."""
    return Answerer(sample_collection, llm, RagSettings(answer_mode="generate"))  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def asked(answerer: Answerer) -> dict[str, Answer]:
    """Each question's whole answer, asked once for the tests that read it (seconds of the model)."""
    return {question: answerer.ask(question) for question in QUESTIONS}


def test_answer_cites_real_chunks(asked: dict[str, Answer], sample_collection: Collection) -> None:
    answer = asked["What happens if an ingestion is interrupted?"]
    assert answer.grounded and answer.answer
    assert answer.citations, answer.answer
    store = sample_collection.store
    assert isinstance(store, LanceStore)
    stored = set(store.column("chunk_id"))
    for c in answer.citations:
        assert c.chunk_id in stored
        assert c.source.endswith(("ingestion-faq.html", "lamina-overview.md", "retrieval-modes.txt"))
    assert set(cited_numbers(answer.answer)) == {c.n for c in answer.citations}
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0


@pytest.mark.parametrize("question", QUESTIONS)
def test_streamed_text_is_the_answer_and_never_empty(
    answerer: Answerer, asked: dict[str, Answer], question: str
) -> None:
    parts = list(answerer.stream(question))  # the built-in gemma runs at temperature 0
    final = parts[-1]
    assert isinstance(final, Answer) and final.grounded  # the stream ends with the cited result
    assert all(isinstance(p, str) for p in parts[:-1]) and len(parts) >= 2
    shown = "".join(p for p in parts[:-1] if isinstance(p, str))
    assert shown == final.answer and final.answer.strip()
    assert shown == asked[question].answer  # streamed or whole, the same answer
    assert set(cited_numbers(final.answer)) == {c.n for c in final.citations}


def test_the_engine_never_gets_a_stop_that_leading_whitespace_would_trigger(answerer: Answerer) -> None:
    _, request = answerer.prepare("How do I resume an ingestion?")
    assert request is not None and request.stop
    assert all(s.strip() for s in request.stop) and "\n\n" in LAZY_STOP
    assert split_stops(["\n\n", "\nQuestion:", '"""']) == (["\nQuestion:", '"""'], ["\n\n"])


def test_nothing_relevant_says_so_without_guessing(answerer: Answerer) -> None:
    answer = answerer.ask("What is the boiling point of liquid nitrogen at sea level?")
    assert not answer.grounded and not answer.citations
    assert "could not find anything relevant" in answer.answer
    assert answer.usage.total_tokens == 0  # the model was never called


def test_prompt_fences_sources_as_data(answerer: Answerer) -> None:
    sources, request = answerer.prepare("How do I resume an ingestion?")
    assert request is not None and request.prompt is not None
    assert FENCE_NOTE in request.prompt
    assert all(f'"""{s.text}"""' in request.prompt for s in sources)


def _hit(i: int, text: str) -> Hit:
    return Hit(f"c{i}", f"d{i}", f"/docs/{i}.md", f"Doc {i}", [], None, text, 1.0)


def test_context_is_trimmed_to_the_window_and_question_always_fits(llm: EngineModel) -> None:
    long_text = "The reactor cooling loop is inspected every week by two engineers. " * 60
    hits = [_hit(i, long_text) for i in range(10)]
    sources = pack(llm, hits, frame_tokens=200, answer_tokens=160)
    used = sum(llm.count_tokens(s.text) + 12 for s in sources)
    assert used <= llm.context_window - 200 - 160
    assert 1 <= len(sources) < 10
    assert sources[-1].text.endswith("…")  # the last one kept was trimmed, not dropped
    with pytest.raises(PromptTooLong, match="shorten the question"):
        pack(llm, hits, frame_tokens=llm.context_window, answer_tokens=160)


def test_huge_question_is_a_clear_error(answerer: Answerer) -> None:
    question = "How do I resume an interrupted ingestion of my documents? " * 500
    with pytest.raises(PromptTooLong):
        answerer.ask(question)


def test_markers_pointing_nowhere_are_dropped() -> None:
    text = "Ingestion resumes [2]. It uses LanceDB [7]. Both [1, 9] hold."
    assert drop_invalid_markers(text, 3) == "Ingestion resumes [2]. It uses LanceDB. Both [1] hold."


def test_few_shot_selects_the_most_similar_examples(workspace: object, llm: EngineModel) -> None:
    from lamina.data.collection import Workspace
    from lamina.models.types import GenerationRequest

    assert isinstance(workspace, Workspace)
    shots = FewShotExamples(workspace.collection("examples", create=True))
    shots.add(
        [
            Example("The movie was wonderful and moving.", "positive"),
            Example("I hated the food, it was cold.", "negative"),
            Example("The service was slow and rude.", "negative"),
            Example("Water boils at 100 degrees Celsius.", "fact"),
            Example("The capital of France is Paris.", "fact"),
        ]
    )
    picked = shots.select("The waiter was impolite and the soup was cold.", k=2)
    assert [p.output for p in picked] == ["negative", "negative"]
    prompt = shots.prompt("The waiter was impolite and the soup was cold.", k=2)
    assert prompt.endswith("Input: The waiter was impolite and the soup was cold.\nOutput:")
    out = llm.generate(GenerationRequest(prompt=prompt, max_tokens=4, stop=["\n"])).text
    assert out.strip() == "negative"


def test_one_call_answer_function(sample_collection: Collection, llm: EngineModel) -> None:
    from lamina.rag.answer import answer

    result = answer("Which database stores the vectors?", collection=sample_collection, model=llm, k=4)
    assert result.grounded and result.model == llm.name
    by_name = answer(
        "Which database stores the vectors?",
        collection="sample",
        model=llm,
        k=4,
        workspace=sample_collection.workspace,
    )
    assert by_name.answer == result.answer


# the assembler --------------------------------------------------------------------------------------
SOURCES = [
    "LanceDB stores the vectors on disk, next to the BM25 index.",
    "The tokenizer truncates input to 256 tokens before embedding.",
    "Ingestion can be resumed: unchanged files are skipped by their SHA-256.",
]


def _assembler(
    embedder: OnnxMiniLM, question: str = "Where are the vectors stored?", **settings: float
) -> AnswerAssembler:
    sources = [Source(i + 1, _hit(i + 1, text), text) for i, text in enumerate(SOURCES)]
    return AnswerAssembler(question, sources, embedder, RagSettings(**settings), LAZY_STOP)  # type: ignore[arg-type]


def _run(
    assembler: AnswerAssembler, pieces: list[str], truncated: bool = False, shown_before: str = ""
) -> tuple[str, Answer]:
    shown = shown_before + "".join(assembler.feed(p) for p in pieces)
    tail, answer = assembler.finish("test-model", Usage(10, 5), truncated=truncated)
    assert shown + tail == answer.answer  # the answer is exactly what was shown
    return shown + tail, answer


def test_a_leading_blank_line_does_not_end_the_answer(embedder: OnnxMiniLM) -> None:
    assembler = _assembler(embedder)
    text, answer = _run(assembler, ["\n\n", "LanceDB keeps the vectors on disk.", "\n\nQuestion: why?"])
    assert text == "LanceDB keeps the vectors on disk. [1]"
    assert assembler.stopped and not answer.extractive and answer.attributed
    assert [c.n for c in answer.citations] == [1]


def test_a_lazy_stop_ends_generation_once_content_began(embedder: OnnxMiniLM) -> None:
    raw = " \nVectors live in LanceDB [1].\nThey are on disk.\n\nQuestion: Who are you?\nAnswer: nobody."
    assembler = _assembler(embedder)
    shown, consumed = [], ""
    for char in raw:
        consumed += char
        shown.append(assembler.feed(char))
        if assembler.stopped:
            break
    assert consumed.endswith("disk.\n\n")  # stopped at the blank line after the content, not before
    assert assembler.feed("More text.") == ""
    text, _ = _run(assembler, [], shown_before="".join(shown))
    assert text == "Vectors live in LanceDB [1].\nThey are on disk. [1]"
    assert assembler.model_cited == {1}


def test_pieces_split_anywhere_give_the_same_answer(embedder: OnnxMiniLM) -> None:
    raw = "\n1. LanceDB stores vectors [1]. [2]\n2. e.g. H. pylori is fine. It is 1.5 mg [9].\nIt ends"
    whole, _ = _run(_assembler(embedder), [raw], truncated=True)
    by_char, _ = _run(_assembler(embedder), list(raw), truncated=True)
    by_three, _ = _run(_assembler(embedder), [raw[i : i + 3] for i in range(0, len(raw), 3)], truncated=True)
    assert whole == by_char == by_three
    assert whole.startswith("LanceDB stores vectors [1].\n")  # [2] does not say it: dropped
    assert "[9]" not in whole and "It ends" not in whole  # no source 9; cut off by the token limit


def test_repeated_sentences_are_dropped(embedder: OnnxMiniLM) -> None:
    assembler = _assembler(embedder, attribution_threshold=1.0)
    raw = "LanceDB stores vectors [1]. LanceDB stores vectors. Input is cut to 256 tokens [2]."
    text, _ = _run(assembler, [raw + "\nAnswer: LanceDB stores vectors [1]."])
    assert text == "LanceDB stores vectors [1]. Input is cut to 256 tokens [2]."
    assert assembler.dropped["repeated"] == 2


def test_markers_pointing_nowhere_are_dropped_and_uncited_sentences_attributed(
    embedder: OnnxMiniLM,
) -> None:
    text, answer = _run(
        _assembler(embedder), ["Vectors live on disk in LanceDB [7]. Input is cut at 256 tokens."]
    )
    assert text == "Vectors live on disk in LanceDB. [1] Input is cut at 256 tokens. [2]"
    assert answer.attributed and [c.n for c in answer.citations] == [1, 2]


@pytest.mark.parametrize(
    "raw",
    [
        "\n[1]\n[2]\n[3]\n[4]\n[5]\n[6]",  # markers only: the model is looping
        "\n[1] Structure of the LanceDB vector store: ",  # a lead-in whose content never came
        " Yes.",  # no content to cite
        "\n1. Answer: 2. Answer: 3. Answer: 4.",
        " Where are the vectors stored?\nAnswer: Where are the vectors stored?",  # the question back
        "",
        "\n\n",
    ],
)
def test_degenerate_output_becomes_an_extractive_answer(embedder: OnnxMiniLM, raw: str) -> None:
    assembler = _assembler(embedder)
    text, answer = _run(assembler, [raw])
    assert answer.extractive and not answer.attributed and answer.grounded
    assert answer.citations and set(cited_numbers(text)) == {c.n for c in answer.citations}
    assert text.startswith("LanceDB stores the vectors on disk, next to the BM25 index. [1]")
    assert assembler.kept == 0
    data = answer.to_dict()
    assert data["extractive"] is True and data["citations"][0]["score"] == 1.0


def test_a_loop_stops_generation(embedder: OnnxMiniLM) -> None:
    assembler = _assembler(embedder)
    shown = ""
    for _ in range(20):
        shown += assembler.feed("\nThe vectors are stored in LanceDB.")
        if assembler.stopped:
            break
    assert assembler.stopped
    text, answer = _run(assembler, [], shown_before=shown)
    assert text == "The vectors are stored in LanceDB. [1]" and not answer.extractive


def test_min_similarity_is_calibrated_at_the_equal_error_point() -> None:
    answerable = np.array([0.2, 0.33, 0.4, 0.5, 0.6])
    off_topic = np.array([0.0, 0.1, 0.15, 0.21, 0.25])
    threshold, refused, answered = _equal_error(answerable, off_topic)
    assert threshold == pytest.approx(0.23) and refused == answered == 0.2


def _chat_assembler(embedder: OnnxMiniLM, **settings: float) -> AnswerAssembler:
    sources = [Source(i + 1, _hit(i + 1, text), text) for i, text in enumerate(SOURCES)]
    return AnswerAssembler(
        "Where are the vectors stored?",
        sources,
        embedder,
        RagSettings(**settings),  # type: ignore[arg-type]
        [],
        stream_tokens=True,
    )


def test_chat_answers_stream_tokens_once_the_first_sentence_is_out(embedder: OnnxMiniLM) -> None:
    raw = "Vectors live in LanceDB [1]. They are kept on disk [9] next to the BM25 index [1"
    tokens = [raw[i : i + 4] for i in range(0, len(raw), 4)] + ["]."]
    assembler = _chat_assembler(embedder)
    shown = [assembler.feed(t) for t in tokens]
    first = next(i for i, s in enumerate(shown) if s)
    assert shown[first].startswith("Vectors live in LanceDB [1].")  # the first sentence, whole
    later = [s for s in shown[first + 1 :] if s]
    assert len(later) >= 5  # then piece by piece, not sentence by sentence
    assert all("[9" not in s and "1]." not in s for s in shown[first + 1 : -1])  # shown once valid
    text, answer = _run(assembler, [], shown_before="".join(shown))
    assert text == "Vectors live in LanceDB [1]. They are kept on disk next to the BM25 index [1]."
    assert [c.n for c in answer.citations] == [1] and not answer.extractive


def test_chat_streaming_attributes_uncited_sentences_and_splits_anywhere(embedder: OnnxMiniLM) -> None:
    raw = "LanceDB stores the vectors [1]. LanceDB keeps the vectors on disk.\nIt is fast [7] ."
    whole, _ = _run(_chat_assembler(embedder), [raw])
    by_char, _ = _run(_chat_assembler(embedder), list(raw))
    by_five, _ = _run(_chat_assembler(embedder), [raw[i : i + 5] for i in range(0, len(raw), 5)])
    assert whole == by_char == by_five
    assert whole.startswith("LanceDB stores the vectors [1]. LanceDB keeps the vectors on disk. [1]\n")
    assert "[7]" not in whole and whole.endswith("It is fast.")
