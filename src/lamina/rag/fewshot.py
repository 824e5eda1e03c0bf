"""In-context learning: (input, output) examples kept as a collection; the k most similar go in the prompt."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from lamina.data.collection import Collection
from lamina.data.progress import IngestReport
from lamina.data.types import Document, sha256_hex
from lamina.models.prompts import render


@dataclass(frozen=True)
class Example:
    input: str
    output: str


class FewShotExamples:
    """Examples are documents whose text is the input (what gets embedded) and whose meta holds both."""

    def __init__(self, collection: Collection) -> None:
        self.collection = collection

    def add(self, examples: Iterable[Example]) -> IngestReport:
        docs = [
            Document(
                source=f"example:{sha256_hex(ex.input)[:16]}",
                text=ex.input,
                content_hash=sha256_hex(f"{ex.input}\0{ex.output}"),
                title="",
                format="example",
                meta=json.dumps({"input": ex.input, "output": ex.output}),
            )
            for ex in examples
        ]
        return self.collection.ingest_documents(docs, total=len(docs))

    def select(self, text: str, k: int = 3) -> list[Example]:
        """The ``k`` stored examples most similar to ``text``, most similar first."""
        picked: list[Example] = []
        seen: set[str] = set()
        for hit in self.collection.search(text, k=k * 3, mode="dense"):
            data = json.loads(hit.meta) if hit.meta else {}
            if hit.doc_id in seen or not {"input", "output"} <= set(data):
                continue
            seen.add(hit.doc_id)
            picked.append(Example(data["input"], data["output"]))
            if len(picked) == k:
                break
        return picked

    def prompt(self, text: str, k: int = 3, template: str = "few_shot_completion") -> str:
        """A completion prompt with the selected examples, most similar last (nearest the question)."""
        examples = list(reversed(self.select(text, k)))
        return render(template, examples=examples, input=text)
