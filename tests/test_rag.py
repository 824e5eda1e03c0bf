"""Grounded answers on the bundled samples with the real default model."""

from __future__ import annotations

import pytest

from lamina.config import RagSettings
from lamina.data.collection import Collection
from lamina.data.embed.onnx import OnnxMiniLM
from lamina.data.store.lance import LanceStore
from lamina.data.types import Hit
from lamina.errors import PromptTooLong
from lamina.models.llamacpp import LlamaCppModel
from lamina.models.prompts import FENCE_NOTE
from lamina.rag.answer import Answer, Answerer
from lamina.rag.citations import attribute, cited_numbers, drop_invalid_markers, drop_repeated_sentences
from lamina.rag.context import pack
from lamina.rag.fewshot import Example, FewShotExamples


@pytest.fixture
def answerer(sample_collection: Collection, llm: LlamaCppModel) -> Answerer:
    return Answerer(sample_collection, llm, RagSettings())  # type: ignore[call-arg]


def test_answer_cites_real_chunks(answerer: Answerer, sample_collection: Collection) -> None:
    answer = answerer.ask("What happens if an ingestion is interrupted?")
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


def test_streaming_answer_ends_with_the_cited_result(answerer: Answerer) -> None:
    parts = list(answerer.stream("Which database stores the vectors?"))
    final = parts[-1]
    assert isinstance(final, Answer)
    assert all(isinstance(p, str) for p in parts[:-1]) and len(parts) > 2


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


def test_context_is_trimmed_to_the_window_and_question_always_fits(llm: LlamaCppModel) -> None:
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


def test_repeated_sentences_are_dropped() -> None:
    text = "It is fast. It is fast [1]. It is cheap.\nIt is fast."
    assert drop_repeated_sentences(text) == "It is fast. It is cheap."


def test_uncited_sentences_are_attributed(embedder: OnnxMiniLM) -> None:
    sources = ["LanceDB stores the vectors on disk.", "The tokenizer truncates input to 256 tokens."]
    text, used = attribute(
        "Vectors live on disk in LanceDB. Input is cut at 256 tokens.", sources, embedder, 0.35
    )
    assert used == [1, 2]
    assert text == "Vectors live on disk in LanceDB. [1] Input is cut at 256 tokens. [2]"


def test_few_shot_selects_the_most_similar_examples(workspace: object, llm: LlamaCppModel) -> None:
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


def test_one_call_answer_function(sample_collection: Collection, llm: LlamaCppModel) -> None:
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
