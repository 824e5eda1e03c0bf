"""The model layer on the real default model (gemma-3-270m on llama.cpp), loaded once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel

from lamina.config import ModelSettings, load_settings
from lamina.engine.model import EngineModel
from lamina.errors import ModelUnavailable, StructuredOutputError, TemplateError, UnknownModel
from lamina.models.llamacpp import resolve_gguf
from lamina.models.prompts import render
from lamina.models.registry import ModelRegistry
from lamina.models.structured import check_schema, generate_json, generate_model
from lamina.models.types import GenerationRequest
from lamina.testing.server import share_models

EIFFEL = (
    "Context: The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889.\n"
    "Question: In which year was the Eiffel Tower completed?\nAnswer:"
)


def test_generate_reports_usage(llm: EngineModel) -> None:
    g = llm.generate(GenerationRequest(prompt=EIFFEL, max_tokens=16, stop=["\n"]))
    assert "1889" in g.text
    assert g.usage.prompt_tokens == llm.count_tokens(EIFFEL)
    assert 0 < g.usage.completion_tokens <= 16
    assert g.model == "gemma-3-270m"


def test_stream_yields_pieces_then_the_whole(llm: EngineModel) -> None:
    events = list(llm.stream(GenerationRequest(prompt="Once upon a time", max_tokens=12)))
    pieces = [e.text for e in events if not e.done]
    final = events[-1].generation
    assert final is not None and events[-1].done
    assert len(pieces) >= 2 and "".join(pieces) == final.text
    assert final.usage.completion_tokens == 12 and final.finish_reason == "length"
    assert final.first_token_seconds is not None and final.first_token_seconds < final.seconds


def test_stream_can_be_abandoned(llm: EngineModel) -> None:
    stream = llm.stream(GenerationRequest(prompt="Count: one, two, three,", max_tokens=64))
    first = next(stream)
    stream.close()  # the consumer walks away: generation is told to stop
    assert first.text
    assert "1889" in llm.generate(GenerationRequest(prompt=EIFFEL, max_tokens=12, stop=["\n"])).text


def test_unknown_model_lists_configured_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownModel, match="gemma-3-270m"):
        ModelRegistry(load_settings(data_dir=tmp_path)).get("gpt-17")


def test_models_from_configuration(tmp_path: Path, models_dir: Path) -> None:
    share_models(tmp_path, models_dir)  # the GGUF the session assembled
    (tmp_path / "lamina.toml").write_text(
        "default_model = 'remote'\n"
        "[models.remote]\nbackend = 'openai'\nbase_url = 'http://127.0.0.1:9/v1'\nchat = true\n"
        "price_input_per_mtok = 0.5\nprice_output_per_mtok = 1.5\ntimeout_s = 2\n"
    )
    registry = ModelRegistry(load_settings(data_dir=tmp_path))
    infos = {m.name: m for m in registry.describe()}
    assert infos["remote"].default and not infos["remote"].available
    assert infos["gemma-3-270m"].available  # the built-in stays available
    assert registry.get().name == "remote" and registry.get().is_chat


def test_missing_gguf_is_a_clear_error(tmp_path: Path) -> None:
    spec = ModelSettings(backend="llamacpp", path=tmp_path / "nope.gguf")
    with pytest.raises(ModelUnavailable, match="not found"):
        resolve_gguf(spec, tmp_path)
    (tmp_path / "junk.gguf").write_bytes(b"\x00" * 1024)
    with pytest.raises(ModelUnavailable, match="not a GGUF"):
        resolve_gguf(ModelSettings(backend="llamacpp", path=tmp_path / "junk.gguf"), tmp_path)


@pytest.mark.system  # processes of their own
def test_corrupt_gguf_fails_cleanly_without_crashing(tmp_path: Path) -> None:
    """Loaded in a child process: a crash there would show as a signal, not an exception."""
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    code = (
        "from pathlib import Path\n"
        "from lamina.config import ModelSettings\n"
        "from lamina.errors import ModelUnavailable\n"
        "from lamina.models.llamacpp import LlamaCppModel\n"
        f"m = LlamaCppModel('bad', ModelSettings(backend='llamacpp', path=Path({str(bad)!r})), Path('.'))\n"
        "try:\n    m.load()\nexcept ModelUnavailable as e:\n    print('CLEAN', e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "CLEAN" in proc.stdout and "could not load" in proc.stdout


PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "city": {"type": "string", "maxLength": 40},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}

SENTENCES = [
    "Alice is 30 and lives in Paris.",
    "Bob, 45, moved to Berlin last year.",
    "Carla (22) studies in Rome.",
    "Dmitri is a 67-year-old from Moscow.",
    "Eve lives in Oslo; she turned 19.",
    "Farid, aged 51, is from Cairo.",
    "Gina is 8 years old and lives in Lima.",
    "Hiro, 33, works in Tokyo.",
    "Ines is 27, based in Lisbon.",
    "Jamal is 40 and lives in Nairobi.",
    "Kofi (29) is from Accra.",
    "Lena, 35, lives in Vienna.",
    "Mateo is 61 and lives in Madrid.",
    "Nadia, 24, from Warsaw.",
    "Omar is 55, in Dubai.",
    "Priya, 31, lives in Mumbai.",
    "Quentin is 47 and lives in Lyon.",
    "Rosa, 72, from Havana.",
    "Sven is 38 and lives in Stockholm.",
    "Tara, 26, is from Dublin.",
]


def test_structured_output_is_always_schema_valid(llm: EngineModel) -> None:
    import jsonschema

    valid = 0
    for sentence in SENTENCES:
        value, usage = generate_json(
            llm,
            GenerationRequest(prompt=f"Text: {sentence}\nJSON with name, age and city:", max_tokens=64),
            PERSON,
        )
        jsonschema.validate(value, PERSON)
        assert usage.completion_tokens > 0
        valid += 1
    assert valid == len(SENTENCES) == 20


def test_pydantic_model_as_schema(llm: EngineModel) -> None:
    class Answer(BaseModel):
        year: int
        confident: bool

    answer, _ = generate_model(llm, GenerationRequest(prompt=EIFFEL + " As JSON:", max_tokens=32), Answer)
    assert isinstance(answer, Answer)


def test_invalid_schema_fails_before_generation(llm: EngineModel) -> None:
    with pytest.raises(StructuredOutputError, match="invalid JSON Schema"):
        generate_json(llm, GenerationRequest(prompt="x"), {"type": "banana"})
    with pytest.raises(StructuredOutputError, match="must be an object"):
        check_schema(["not", "a", "schema"])


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{% set x = [].append.__self__ %}{{ x.__class__ }}",
        "{{ question.__class__.__base__.__subclasses__() }}",
    ],
)
def test_sandbox_escapes_are_refused(template: str) -> None:
    with pytest.raises(TemplateError):
        render(template, question="q")


def test_templates_report_mistakes() -> None:
    assert render("Q: {{ question }}", question="why?") == "Q: why?"
    with pytest.raises(TemplateError, match="undefined"):
        render("{{ missing }}")
    with pytest.raises(TemplateError, match="syntax"):
        render("{% for %}")


def test_a_gguf_is_hashed_again_only_when_it_changed(tmp_path: Path) -> None:
    """The package's ``assemble`` hashes the whole file; its stamp skips that while the file stays."""
    import os
    import types

    from lamina.models import llamacpp

    calls: list[Path] = []
    target = tmp_path / "m.gguf"

    def assemble(path: Path) -> Path:
        calls.append(path)
        if not path.exists():
            path.write_bytes(b"GGUF" + bytes(64))
        return path

    package = types.SimpleNamespace(assemble=assemble, EXPECTED_SHA256="ab" * 32)
    assert llamacpp._assembled(package, target) == target
    assert llamacpp._assembled(package, target) == target
    assert len(calls) == 1  # the second start trusted the stamp
    seen = target.stat()
    os.utime(target, ns=(seen.st_atime_ns, seen.st_mtime_ns + 1_000_000))  # the file changed
    llamacpp._assembled(package, target)
    assert len(calls) == 2
    (tmp_path / "m.gguf.verified").write_text("{}")  # a stamp that says something else
    llamacpp._assembled(package, target)
    assert len(calls) == 3
