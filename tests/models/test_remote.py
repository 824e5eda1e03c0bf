"""A remote OpenAI-compatible model through the engine, against a real llama.cpp HTTP server on
127.0.0.1.

xllamacpp's engine listens on a loopback port; a model configured as ``backend = "openai"`` at that
address is reached exactly as vLLM or Ollama would be. Only the failure tests use a stand-in
server, because they must misbehave on purpose (429s, hanging).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lamina.config import ModelSettings
from lamina.engine.model import EngineModel
from lamina.errors import GenerationFailed
from lamina.models.llamacpp import LlamaCppModel
from lamina.models.structured import generate_json
from lamina.models.types import GenerationRequest
from lamina.testing.json_http import JsonHandler, serving
from tests.shared import engine_model

EIFFEL = (
    "Context: The Eiffel Tower is a wrought-iron lattice tower in Paris, completed in 1889.\n"
    "Question: In which year was the Eiffel Tower completed?\nAnswer:"
)


@pytest.fixture(scope="module")
def remote(llamacpp: LlamaCppModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineModel]:
    spec = ModelSettings(backend="openai", base_url=llamacpp.openai_base_url, temperature=0, timeout_s=60)
    models, model = engine_model(tmp_path_factory.mktemp("remote"), "remote-gemma", spec)
    yield model
    models.close()


def _model(tmp_path: Path, url: str, **spec: object) -> Iterator[EngineModel]:
    models, model = engine_model(tmp_path, "flaky", ModelSettings(backend="openai", base_url=url, **spec))
    yield model
    models.close()


def test_completion_over_http_matches_local(remote: EngineModel, llm: EngineModel) -> None:
    request = GenerationRequest(prompt=EIFFEL, max_tokens=16, stop=["\n"])
    over_http = remote.generate(request)
    local = llm.generate(request)
    assert over_http.text == local.text and "1889" in over_http.text
    assert over_http.usage.prompt_tokens == local.usage.prompt_tokens > 0
    assert over_http.usage.completion_tokens == local.usage.completion_tokens


def test_streaming_over_http(remote: EngineModel) -> None:
    events = list(remote.stream(GenerationRequest(prompt="Once upon a time", max_tokens=10)))
    final = events[-1].generation
    assert final is not None and final.usage.completion_tokens == 10
    assert "".join(e.text for e in events[:-1]) == final.text
    assert final.first_token_seconds is not None


def test_chat_endpoint_and_token_count(remote: EngineModel, llm: EngineModel) -> None:
    g = remote.generate(GenerationRequest(messages=[{"role": "user", "content": "Say hello."}], max_tokens=8))
    assert g.usage.completion_tokens > 0
    assert remote.count_tokens("Hello world, how are you?") == llm.count_tokens("Hello world, how are you?")


def test_schema_through_response_format(remote: EngineModel) -> None:
    # Closed schema: llama.cpp's grammar then ends the object after "year". With extra keys allowed
    # the 270M model rambles past max_tokens, and whether it does depends on the engine's prompt
    # cache (which earlier requests filled; a generic OpenAI client cannot turn it off).
    schema = {
        "type": "object",
        "properties": {"year": {"type": "integer"}},
        "required": ["year"],
        "additionalProperties": False,
    }
    value, _ = generate_json(remote, GenerationRequest(prompt=EIFFEL + " JSON:", max_tokens=24), schema)
    assert isinstance(value["year"], int)


class _Flaky(JsonHandler):
    """Answers 429 (Retry-After: 0) twice, then a completion; or hangs, on /hang/."""

    calls = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/hang"):
            time.sleep(3)
            return
        type(self).calls += 1
        if type(self).calls <= 2:
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.reply(
            {
                "choices": [{"text": " ok", "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1},
            }
        )


@pytest.fixture
def flaky() -> Iterator[str]:
    _Flaky.calls = 0
    with serving(_Flaky) as root:
        yield root


def test_429_is_retried_honouring_retry_after(flaky: str, tmp_path: Path) -> None:
    for model in _model(tmp_path, flaky + "/v1", max_retries=3):
        started = time.monotonic()
        g = model.generate(GenerationRequest(prompt="hi"))
        assert g.text == " ok" and _Flaky.calls == 3
        assert time.monotonic() - started < 2  # Retry-After: 0 means no backoff sleep


def test_retries_are_bounded(flaky: str, tmp_path: Path) -> None:
    for model in _model(tmp_path, flaky + "/v1", max_retries=1):
        with pytest.raises(GenerationFailed, match=r"model flaky: .*HTTP 429"):
            model.generate(GenerationRequest(prompt="hi"))
        assert _Flaky.calls == 2


def test_hanging_remote_times_out_clearly(flaky: str, tmp_path: Path) -> None:
    for model in _model(tmp_path, flaky + "/hang/v1", timeout_s=0.5, max_retries=0):
        started = time.monotonic()
        with pytest.raises(GenerationFailed, match=r"no answer within 0\.5s"):
            model.generate(GenerationRequest(prompt="hi"))
        assert time.monotonic() - started < 2.5


def test_unreachable_remote(tmp_path: Path) -> None:
    for model in _model(tmp_path, "http://127.0.0.1:9/v1", max_retries=0):
        with pytest.raises(GenerationFailed, match="unreachable"):
            model.generate(GenerationRequest(prompt="hi"))
