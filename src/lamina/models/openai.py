"""Remote models over OpenAI-compatible HTTP (vLLM, Ollama, llama.cpp server, OpenAI): what Lamina
needs to know of one besides its traffic, which goes through ``lamina.engine``: its own tokenizer
(``/tokenize`` where the server has one, vLLM's and llama.cpp's), else an estimate.
"""

from __future__ import annotations

from functools import cached_property

import httpx

from lamina.config import ModelSettings
from lamina.http import bearer_headers
from lamina.models.base import ConfiguredModel, estimate_tokens


class OpenAIModel(ConfiguredModel):
    def __init__(
        self, name: str, settings: ModelSettings, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(name, settings)
        self._transport = transport

    @cached_property
    def _client(self) -> httpx.Client:
        headers = bearer_headers(self.settings.api_key_env, f"model {self.name}: api_key_env")
        assert self.settings.base_url is not None
        return httpx.Client(
            base_url=self.settings.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(self.settings.timeout_s, connect=min(10.0, self.settings.timeout_s)),
            transport=self._transport,
            trust_env=False,
        )

    def count_tokens(self, text: str) -> int:
        """The server's own tokenizer where it has one (llama.cpp, vLLM ``/tokenize``), else an estimate."""
        if self._tokenize_url is not None:
            try:
                resp = self._client.post(self._tokenize_url, json={"content": text, "add_special": True})
                if resp.status_code == 200:
                    return len(resp.json()["tokens"])
            except (httpx.HTTPError, KeyError, ValueError):
                pass
            self._tokenize_url = None
        return estimate_tokens(text)

    @cached_property
    def _tokenize_url(self) -> str | None:
        assert self.settings.base_url is not None
        root = self.settings.base_url.rstrip("/")
        return root.removesuffix("/v1") + "/tokenize"

    def close(self) -> None:
        if "_client" in self.__dict__:
            self._client.close()
