"""``lamina eval answers``: are grounded answers right, concise, and cited where the answer stands?

Citations alone hide wrong answers (every answer cites something), so each question comes with the
strings a right answer must contain. A dataset is JSONL, one question per line::

    {"id": "faq-sync", "question": "How do I remove ...?", "answers": ["--sync"], "kind": "prose"}

``answers`` lists alternatives; an alternative is a string or a list of strings that must all
appear (case, whitespace, ``[n]`` markers and Markdown emphasis ignored). An empty list means the
collection cannot answer: right is "nothing relevant" (or the answerer saying it found no answer).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

from lamina.config import Settings
from lamina.data.collection import Collection, Workspace
from lamina.errors import LaminaError
from lamina.models.base import LLM
from lamina.rag.answer import Answerer
from lamina.rag.assemble import NO_ANSWER
from lamina.rag.citations import MARKER
from lamina.rag.types import Answer

CONCISE_CHARS = 400  # "a sentence or a few", not a pasted passage
BUNDLED = "answers.jsonl"


@dataclass(frozen=True)
class AnswerCase:
    id: str
    question: str
    answers: tuple[tuple[str, ...], ...]  # alternatives, each a conjunction of required strings
    kind: str = ""

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def bundled_dataset() -> Path:
    """The set shipped with Lamina: the sample documents plus ``../shared/data/docs``."""
    return Path(str(files("lamina.evals") / "data" / BUNDLED))


def load_cases(path: Path) -> list[AnswerCase]:
    """Read a JSONL dataset; a malformed line is an error naming the file and line."""
    cases: list[AnswerCase] = []
    seen: set[str] = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            question, raw = row["question"], row.get("answers", [])
            if not isinstance(question, str) or not question.strip() or not isinstance(raw, list):
                raise ValueError("'question' must be text and 'answers' a list")
            alternatives = tuple(_alternative(a) for a in raw)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise LaminaError(f"{path}:{number}: not a question line ({exc})") from None
        case_id = str(row.get("id") or f"q{number}")
        if case_id in seen:
            raise LaminaError(f"{path}:{number}: the id {case_id!r} is used twice")
        seen.add(case_id)
        cases.append(AnswerCase(case_id, question.strip(), alternatives, str(row.get("kind", ""))))
    if not cases:
        raise LaminaError(f"{path}: no questions in it")
    return cases


def _alternative(value: Any) -> tuple[str, ...]:
    parts = [value] if isinstance(value, str) else value
    if not isinstance(parts, list) or not parts or not all(isinstance(p, str) and p.strip() for p in parts):
        raise ValueError("each answer is a string or a list of strings")
    return tuple(parts)


def normalize(text: str) -> str:
    """What "contains" compares: case-folded, markers and Markdown emphasis gone, spaces collapsed."""
    text = unicodedata.normalize("NFKC", MARKER.sub(" ", text)).replace("`", "").replace("*", "")
    return " ".join(text.split()).casefold()


def contains(text: str, alternatives: Iterable[Sequence[str]]) -> bool:
    haystack = normalize(text)
    return any(all(normalize(part) in haystack for part in alt) for alt in alternatives)


@dataclass
class CaseResult:
    id: str
    question: str
    kind: str
    answerable: bool
    answer: str
    right: bool
    contains: bool
    concise: bool
    cited: bool
    citation_has_answer: bool
    extractive: bool
    nothing_relevant: bool
    empty: bool
    seconds: float
    cited_sources: list[str] = field(default_factory=list)
    evidence: float | None = None  # a chosen answer's evidence (rag.min_evidence is its bar)
    not_found: bool = False  # refused: the sources do not answer it (below the bar, or no span)
    answered_right: bool = False  # an answerable question whose answer, unrefused, is right

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def judge(case: AnswerCase, answer: Answer, chunk_texts: dict[int, str], seconds: float) -> CaseResult:
    """Score one answer; ``chunk_texts`` maps each source number in the prompt to its full text."""
    text = answer.answer
    refused = not answer.grounded or not answer.found or text.strip() == NO_ANSWER
    has = contains(text, case.answers) if case.answerable else False
    concise = len(text) <= CONCISE_CHARS
    cited = bool(answer.citations)
    supporting = case.answerable and any(
        contains(chunk_texts.get(c.n, c.snippet), case.answers) for c in answer.citations
    )
    right = (has and concise) if case.answerable else refused
    return CaseResult(
        evidence=answer.evidence,
        not_found=answer.grounded and not answer.found,
        answered_right=case.answerable and has and concise,
        id=case.id,
        question=case.question,
        kind=case.kind,
        answerable=case.answerable,
        answer=text,
        right=right,
        contains=has,
        concise=concise,
        cited=cited,
        citation_has_answer=supporting,
        extractive=answer.extractive,
        nothing_relevant=not answer.grounded,
        empty=not text.strip(),
        seconds=round(seconds, 2),
        cited_sources=[c.source for c in answer.citations],
    )


COUNTED = (
    "right",
    "contains",
    "concise",
    "cited",
    "citation_has_answer",
    "extractive",
    "nothing_relevant",
    "not_found",
    "empty",
)


def default_docs() -> list[Path]:
    """The documents the bundled set asks about: ``$LAMINA_SHARED_DATA/docs`` or ../shared/data/docs."""
    shared = os.environ.get("LAMINA_SHARED_DATA")
    folder = Path(shared) / "docs" if shared else Path("../shared/data/docs")
    return [folder] if folder.is_dir() else []


@contextmanager
def temporary_collection(
    settings: Settings, folders: Sequence[Path], *, samples: bool = True
) -> Iterator[Collection]:
    """``folders`` (and the bundled samples), ingested into a collection that is gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="lamina-answers-") as tmp:
        ws = Workspace(settings.scratch(Path(tmp)))
        coll = ws.collection("answers", create=True)
        with as_file(files("lamina") / "samples") as bundled:
            coll.ingest(([str(bundled)] if samples else []) + [str(f) for f in folders])
        yield coll


def evaluate_answers(collection: Collection, model: LLM, cases: Sequence[AnswerCase]) -> dict[str, Any]:
    """Ask every question through the one answer path (``Answerer``) and judge each answer.

    The questions are asked with no evidence bar (``rag.min_evidence = 0``), so every chosen answer
    and its evidence is seen; the configured bar is then applied to those answers (an answer under
    it is "not found", as the answerer would have said), and the trade-off of every bar is reported:
    right answers kept against wrong ones refused."""
    bar = collection.settings.rag.min_evidence
    answerer = Answerer(collection, model, collection.settings.rag.model_copy(update={"min_evidence": 0.0}))
    results: list[CaseResult] = []
    started = time.perf_counter()
    for case in cases:
        began = time.perf_counter()
        sources, request = answerer.prepare(case.question)
        *_, answer = answerer.respond(case.question, sources, request)
        assert isinstance(answer, Answer)
        chunks = {s.n: s.hit.text for s in sources}
        results.append(judge(case, answer, chunks, time.perf_counter() - began))
    seconds = time.perf_counter() - started
    curve = tradeoff(results, bar)
    for r in results:
        refuse(r, bar)
    return {
        **summarize(results, model.name, collection.name, seconds),
        "min_evidence": bar,
        "tradeoff": curve,
    }


def refuse(result: CaseResult, bar: float) -> None:
    """Judge ``result`` as the answerer answers with ``rag.min_evidence = bar``."""
    if result.evidence is not None and result.evidence < bar and not result.nothing_relevant:
        result.not_found = True
        result.right = not result.answerable
        result.contains = result.citation_has_answer = False


def tradeoff(results: Sequence[CaseResult], bar: float) -> list[dict[str, Any]]:
    """For each bar on evidence: answerable questions answered right (kept) and refused (lost),
    answerable questions answered wrong that are refused, unanswerable questions refused."""
    rows = []
    for level in sorted({round(0.05 * i, 2) for i in range(13)} | {bar}):
        judged = [(r, r.evidence is not None and r.evidence < level) for r in results]
        rows.append(
            {
                "min_evidence": level,
                "right_kept": sum(r.answered_right and not under for r, under in judged),
                "right_lost": sum(r.answered_right and under for r, under in judged),
                "wrong_refused": sum(r.answerable and not r.answered_right and under for r, under in judged),
                "unanswerable_refused": sum(not r.answerable and (under or r.right) for r, under in judged),
            }
        )
    return rows


def summarize(results: list[CaseResult], model: str, collection: str, seconds: float) -> dict[str, Any]:
    answerable = [r for r in results if r.answerable]
    right_supported = sum(r.right and r.citation_has_answer for r in answerable)
    totals = {name: sum(bool(getattr(r, name)) for r in results) for name in COUNTED}
    return {
        "model": model,
        "collection": collection,
        "questions": len(results),
        "answerable": len(answerable),
        "totals": totals,
        "right_share": round(totals["right"] / len(results), 3) if results else 0.0,
        "right_answerable": sum(r.right for r in answerable),
        "right_and_cited_where_it_stands": right_supported,
        "right_unanswerable": sum(r.right for r in results if not r.answerable),
        "seconds": round(seconds, 1),
        "results": [r.to_dict() for r in results],
    }


_WS = re.compile(r"\s+")


def one_line(text: str, width: int = 90) -> str:
    """An answer shortened for a table cell."""
    flat = _WS.sub(" ", text).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"
