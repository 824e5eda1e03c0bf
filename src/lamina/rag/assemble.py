"""Raw model text in, the answer a reader sees out: one push-style assembler for every path.

``lamina ask``, ``Answerer.ask`` and the server all feed the model's raw text through the same
``AnswerAssembler``, piece by piece or all at once, so what a stream shows is byte for byte the final
answer. It needs no model object (only the embedder, for citations), so a server can drive it from a
worker thread while the model streams elsewhere.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from lamina.config import RagSettings
from lamina.data.embed.base import Embedder, Vectors
from lamina.models.types import Usage
from lamina.rag.choose import choose_answer
from lamina.rag.citations import (
    MARKER,
    MARKER_PATTERN,
    cited_numbers,
    drop_invalid_markers,
    keep_markers,
)
from lamina.rag.context import Source
from lamina.rag.sentences import degenerate, key, sentence_end, strip_scaffolding, terminated
from lamina.rag.support import supports
from lamina.rag.types import Answer, Citation

NO_ANSWER = "I could not find an answer to this in the retrieved sources."
_SPACED_MARKER = re.compile(rf"(?P<space>\s*){MARKER_PATTERN}")  # a marker and the space before it
_TRAILING_UNSETTLED = re.compile(r"\s*(?:\[[\d\s,]*)?$")  # may still become (or precede) a marker
_CUT_MARKER = re.compile(r"\s*\[[\d\s,]*$")  # a marker the model never finished
_DROPPED = "\x00"  # where an invalid marker was removed, until the next character is known
_AFTER_DROPPED = re.compile(r"\x00(?:\s+(?=[.,;:!?]))?")
MAX_DROPPED_RUN = 4  # this many unusable sentences in a row: the model is looping, stop it


def split_stops(stops: Sequence[str]) -> tuple[list[str], list[str]]:
    """(stops the engine may apply, lazy stops Lamina applies once content began).

    A stop made only of whitespace ("\\n\\n") would fire on the blank line a base model often opens
    with, ending the answer before it starts; those are lazy. The rest can be left to the engine.
    """
    engine = [s for s in stops if s.strip()]
    return engine, [s for s in stops if s and not s.strip()]


class LazyStop:
    """Cuts text at the first stop that starts once content has begun; leading whitespace is dropped.

    Text is released only when no stop can still begin inside it, so nothing shown is ever taken back.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._hold = max((len(s) for s in self.stops), default=1) - 1
        self._raw = ""
        self._released = 0
        self.stopped = False

    @property
    def text(self) -> str:
        """Everything released so far: the model's text without leading whitespace, cut at the stop."""
        start = len(self._raw) - len(self._raw.lstrip())
        return self._raw[start : self._released] if self._released > start else ""

    def feed(self, piece: str) -> str:
        """Take raw text; return the text now safe to pass on (possibly "")."""
        if self.stopped:
            return ""
        self._raw += piece
        start = len(self._raw) - len(self._raw.lstrip())
        if start == len(self._raw):
            return ""  # only whitespace so far
        self._released = max(self._released, start)
        found = [p for s in self.stops if (p := self._raw.find(s, start)) >= 0]
        if found:
            self.stopped = True
            end = min(found)
        else:
            end = max(len(self._raw) - self._hold, self._released)
        out = self._raw[self._released : end]
        self._released = end
        return out

    def flush(self) -> str:
        """The generation ended: release what was held back."""
        if self.stopped or not self._raw.strip():
            return ""
        out = self._raw[self._released :]
        self._released = len(self._raw)
        return out


class AnswerAssembler:
    """Raw model text in, whole cleaned sentences out, each cited where a source supports it.

    A sentence is shown once it is certainly finished: leading whitespace stripped, scaffolding
    ("1.", "Answer:", a leading "[n]" that only numbers a list) removed, repeated and degenerate
    sentences (see ``sentences.degenerate``) dropped, markers pointing at no source removed, and a
    sentence without a valid marker attributed to the source it is most similar to (" [n]" appended)
    when that similarity reaches ``settings.attribution_threshold``. Uncited sentences wait for the
    first cited one, so an answer that cites nothing is never shown. Sources are embedded once, lazily.

    With ``stream_tokens`` (chat models), once the first sentence is shown the text streams as it
    comes: only what may still change is held back (trailing whitespace and a marker still being
    written, so that an invalid marker is removed with its space), and each finished sentence that
    cites nothing gets its attribution appended after it. Its later sentences are never dropped (they
    are already shown); repeats still stop a looping model. Base models keep sentence granularity.

    The output depends only on the text fed, never on how it was split into pieces. Not thread-safe:
    one caller feeds it (from any one thread at a time), then calls ``finish`` once.
    """

    def __init__(
        self,
        question: str,
        sources: list[Source],
        embedder: Embedder,
        settings: RagSettings,
        lazy_stop: Sequence[str],
        *,
        stream_tokens: bool = False,
    ) -> None:
        self.question = question
        self.sources = sources
        self.embedder = embedder
        self.settings = settings
        self._stop = LazyStop(lazy_stop)
        self._text = ""  # released model text
        self._pos = 0  # where the next sentence starts in _text
        self._newline = False  # a line break since the last sentence kept
        self._out: list[str] = []  # every piece shown
        self._held: list[tuple[str, bool]] = []  # uncited sentences (and line break before) not shown yet
        self._seen: set[str] = set()
        self._dropped_run = 0
        self._looping = False
        self._source_vectors: Vectors | None = None
        self._stream_tokens = stream_tokens
        self._emitted = 0  # token streaming: how far into _text the output has gone
        self._dropped_marker = False  # token streaming: the output so far ends where a marker was dropped
        self.kept = 0  # sentences of the model's own that were shown
        self.dropped: Counter[str] = Counter()  # degenerate / repeated / truncated / unsupported
        self.model_cited: set[int] = set()  # source numbers the model's own valid markers cite
        self.attributed: set[int] = set()  # source numbers Lamina added to uncited sentences
        self.reattributed = 0  # model markers moved to the passage that says the claim
        self._sentence_cited = False  # token streaming: the current sentence kept a valid marker

    @property
    def stopped(self) -> bool:
        """A lazy stop was reached (or the model is looping): the caller should stop generating."""
        return self._stop.stopped or self._looping

    @property
    def model_text(self) -> str:
        """The model's text as used: leading whitespace dropped, cut at the lazy stop."""
        return self._stop.text

    def feed(self, piece: str) -> str:
        """Take raw model text; return the text that is now final and may be shown (possibly "")."""
        if self.stopped:
            return ""
        self._text += self._stop.feed(piece)
        final = self._stop.stopped
        if self._streaming:
            return self._tokens(final=final)
        shown = self._sentences(final=final, until_shown=self._stream_tokens)
        if self._streaming and not self._looping:  # the first sentence is out: tokens from here
            shown += self._start_tokens(final=final)
        return shown

    def _start_tokens(self, *, final: bool) -> str:
        self._emitted = self._pos
        while self._emitted > 0 and self._text[self._emitted - 1].isspace():
            self._emitted -= 1  # the space after the last sentence shown is the next one's
        self._pos = self._emitted
        return self._tokens(final=final)

    @property
    def _streaming(self) -> bool:
        return self._stream_tokens and bool(self._out)

    def finish(self, model: str, usage: Usage, *, truncated: bool = False) -> tuple[str, Answer]:
        """Flush what remains and build the ``Answer`` (its text is every piece returned, joined).

        ``truncated``: the generation hit its token limit, so an unfinished last sentence is dropped.
        Uncited sentences still held (no sentence ever cited a source) are dropped as unsupported.
        With nothing usable from the model (or no model asked: ``answer_mode = "choose"``), the
        answer is extractive: the span of the sources that answers the question, cited.
        """
        tail = ""
        if not self._looping:
            self._text += self._stop.flush()
            if self._streaming:
                tail = self._tokens(final=True)
            else:
                tail = self._sentences(final=True, truncated=truncated, until_shown=self._stream_tokens)
                if self._streaming and not self._looping:
                    tail += self._start_tokens(final=True)
        if self._held:
            self.dropped["unsupported"] += len(self._held)
            self._held.clear()
        extractive, found, evidence = False, True, None
        if not self._out:
            choice = choose_answer(self.question, self.sources, self.embedder) if self.sources else None
            evidence = choice.evidence if choice else None
            if choice is None:
                quoted, found = NO_ANSWER, False
            elif choice.evidence < self.settings.min_evidence:
                quoted, found = choice.refusal, False
            else:
                quoted, extractive = choice.text, True
            tail = self._show(quoted, False)
        text = "".join(self._out)
        valid = {s.n: s for s in self.sources}
        numbers = sorted(n for n in set(cited_numbers(text)) if n in valid)
        return tail, Answer(
            answer=text,
            citations=[Citation.of(valid[n]) for n in numbers],
            model=model,
            usage=usage,
            grounded=bool(self.sources),
            attributed=bool(self.attributed) and not extractive,
            extractive=extractive,
            found=found,
            evidence=evidence,
        )

    # sentences -----------------------------------------------------------------------------------
    def _sentences(self, *, final: bool, truncated: bool = False, until_shown: bool = False) -> str:
        """Show the sentences that became certain; ``final``: the text will not grow any more;
        ``until_shown``: stop once something is shown (token streaming takes over from there).

        Uncited sentences are held until some sentence cites a source, so an answer that would
        cite nothing is never shown; ``finish`` replaces it with an extractive one.
        """
        shown: list[str] = []
        text = self._text
        while not self._looping:
            while self._pos < len(text) and text[self._pos].isspace():
                self._newline |= text[self._pos] == "\n"
                self._pos += 1
            end = sentence_end(text, self._pos, final=final)
            if end is None:
                break
            raw, self._pos = text[self._pos : end], end
            if truncated and end == len(text) and not terminated(raw):
                self.dropped["truncated"] += 1
                continue
            sentence, cited = self._clean(raw)
            if not sentence:
                continue
            self._held.append((sentence, self._newline))
            self._newline = False
            if cited or self._out:
                shown += [self._show(s, newline) for s, newline in self._held]
                self.kept += len(self._held)
                self._held.clear()
                if until_shown:
                    break
        return "".join(shown)

    def _tokens(self, *, final: bool) -> str:
        """Token streaming: pass on what can no longer change; finish each sentence as it ends."""
        shown: list[str] = []
        text = self._text
        while not self._looping:
            start = self._pos
            while start < len(text) and text[start].isspace():
                start += 1
            end = sentence_end(text, start, final=final) if start < len(text) else None
            if end is None:
                break
            shown.append(self._emit(end, hold=False))
            shown.append(self._end_sentence(text[start:end]))
            self._pos = end
        if not self._looping:
            shown.append(self._emit(len(text), hold=not final))
        return "".join(shown)

    def _emit(self, limit: int, *, hold: bool) -> str:
        """The model's text up to ``limit``, invalid markers (and the space before them) removed;
        ``hold``: keep back trailing whitespace and a marker that may still be being written."""
        start = self._emitted
        span = self._text[start:limit]
        if hold:
            settled = _TRAILING_UNSETTLED.search(span)
            take = settled.start() if settled else len(span)
            span, self._emitted = span[:take], self._emitted + take
        else:
            self._emitted = limit
            if limit == len(self._text):  # the very end: nothing more will come
                span = _CUT_MARKER.sub("", span).rstrip()
        valid = len(self.sources)
        lead = _DROPPED if self._dropped_marker else ""
        base = start - len(lead)  # where ``lead + span`` starts in _text

        def keep(match: re.Match[str]) -> str:
            good = [int(p) for p in match.group("numbers").split(",") if 1 <= int(p) <= valid]
            claim = self._text[self._pos : base + match.start()]  # what the marker cites
            checked = self._checked(claim, good)
            self.model_cited.update(good)
            if checked != good and checked:
                self.reattributed += 1
            self._sentence_cited |= bool(checked)
            return f"{match.group('space')}[{', '.join(map(str, checked))}]" if checked else _DROPPED

        out = _SPACED_MARKER.sub(keep, lead + span)
        self._dropped_marker = out.endswith(_DROPPED)  # a space and "." may still follow it
        out = _AFTER_DROPPED.sub("", out)  # "fast [7] ." -> "fast."
        if out:
            self._out.append(out)
        return out

    def _end_sentence(self, raw: str) -> str:
        """A streamed sentence ended: attribute it if it cites nothing; notice a loop."""
        sentence = drop_invalid_markers(strip_scaffolding(raw), len(self.sources))
        sentence_key = key(sentence)
        if sentence_key in self._seen or degenerate(sentence, self.question):
            self._dropped_run += 1
            self._looping = self._dropped_run >= MAX_DROPPED_RUN
        else:
            self._dropped_run = 0
        self._seen.add(sentence_key)
        self.kept += 1
        cited, self._sentence_cited = self._sentence_cited, False
        if cited:
            return ""
        sentence = keep_markers(sentence, set())
        best, similarity = self._support(sentence) if sentence else (0, -1.0)
        if similarity < self.settings.attribution_threshold:
            return ""
        self.attributed.add(best)
        marker = f" [{best}]"
        self._out.append(marker)
        return marker

    def _clean(self, raw: str) -> tuple[str, bool]:
        """(the sentence to show, "" when it is dropped; whether it cites a source)."""
        sentence = drop_invalid_markers(strip_scaffolding(raw), len(self.sources))
        sentence_key = key(sentence)
        reason = (
            "degenerate"
            if degenerate(sentence, self.question)
            else "repeated"
            if sentence_key in self._seen
            else ""
        )
        if reason:
            self.dropped[reason] += 1
            self._dropped_run += 1
            self._looping = self._dropped_run >= MAX_DROPPED_RUN
            return "", False
        self._seen.add(sentence_key)
        self._dropped_run = 0
        numbers = [n for n in cited_numbers(sentence) if 1 <= n <= len(self.sources)]
        if numbers:
            self.model_cited.update(numbers)
            checked = self._checked(sentence, numbers)
            if checked == numbers:
                return sentence, True
            if checked and set(checked) <= set(numbers):  # some of its numbers hold: keep those
                return keep_markers(sentence, set(checked)), True
            bare = keep_markers(sentence, set())
            if checked:
                self.reattributed += 1
                return f"{bare} [{', '.join(map(str, checked))}]", True
            sentence = bare  # cited a passage that does not say it: attributed below, or held
        best, similarity = self._support(sentence)
        if similarity >= self.settings.attribution_threshold:
            self.attributed.add(best)
            return f"{sentence} [{best}]", True
        return sentence, False

    def _show(self, sentence: str, newline: bool) -> str:
        """Join a sentence onto what was shown: on a new line where the model broke the line."""
        piece = (("\n" if newline else " ") if self._out else "") + sentence
        self._out.append(piece)
        return piece

    # sources -------------------------------------------------------------------------------------
    def _checked(self, claim: str, numbers: list[int]) -> list[int]:
        """The cited numbers whose passage says ``claim``; if none does, the one source that does
        (most similar first), if any: a marker never ships pointing at a passage without the claim."""
        by_number = {src.n: src for src in self.sources}
        kept = [n for n in numbers if n in by_number and supports(by_number[n].text, claim)]
        if kept or not numbers:
            return kept
        best, _ = self._support(claim)
        return [best] if best else []

    def _support(self, sentence: str) -> tuple[int, float]:
        """Among the sources that support ``sentence`` (``support.supports``), the most similar
        one (its number) and that similarity; (0, -1.0) when none does."""
        claim = MARKER.sub("", sentence).strip()
        candidates = [i for i, src in enumerate(self.sources) if supports(src.text, claim)]
        if not candidates:
            return 0, -1.0
        if self._source_vectors is None:
            self._source_vectors = self.embedder.embed([s.text for s in self.sources])
        similarity = self._source_vectors[candidates] @ self.embedder.embed([claim])[0]
        best = int(np.argmax(similarity))
        return self.sources[candidates[best]].n, float(similarity[best])
