"""The traffic of ``lamina bench routing``: tenants' system prompts, one seeded schedule of
conversations every phase replays, the streaming client that holds them through Lamina, and the
busy-maker that loads an endpoint from outside."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from lamina.bench.sources import Text

MODEL = "twin"  # the model name the bench's Lamina serves over the two endpoints

QUESTIONS = (
    "What is this about?",
    "Who is it written for?",
    "Summarise the first point.",
    "What should I do first?",
    "Is anything optional?",
    "What can go wrong?",
    "Which part matters most?",
    "Give me one example.",
    "What does it cost?",
    "How long does it take?",
    "What is the default?",
    "Can I undo it?",
    "Where do I start?",
    "What is left out?",
    "Explain the last point.",
    "Is it safe to skip?",
)


@dataclass(frozen=True)
class Conversation:
    """One conversation of the schedule: when it arrives, whose it is, its questions and pauses."""

    arrival_s: float
    tenant: int
    questions: tuple[str, ...]
    think_s: tuple[float, ...]  # before each turn after the first


@dataclass
class Turn:
    conversation: int
    turn: int
    due: float
    first: float = 0.0
    done: float = 0.0
    tokens: int = 0
    error: str | None = None


@dataclass
class Hog:
    """Clients that are not Lamina, keeping an endpoint busy: long completions, ``streams`` at once."""

    root: str
    streams: int
    max_tokens: int
    usage: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(self.streams)]

    async def _loop(self, i: int) -> None:
        body = {
            "prompt": f"Count slowly, stream {i}: 1, 2, 3,",
            "max_tokens": self.max_tokens,
            "ignore_eos": True,  # llama.cpp: the whole length, every time
            "temperature": 0.0,
        }
        async with httpx.AsyncClient(timeout=600, trust_env=False) as http:
            while not self._stop.is_set():
                try:
                    r = await http.post(f"{self.root}/v1/completions", json=body)
                    usage = r.json()["usage"] if r.status_code == 200 else None
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    self.errors[type(exc).__name__] += 1
                    await asyncio.sleep(0.2)
                    continue
                if usage is None:
                    self.errors[f"HTTP {r.status_code}"] += 1
                    await asyncio.sleep(0.2)
                    continue
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
                self.usage["requests"] += 1
                self.usage["prompt_tokens_total"] += usage["prompt_tokens"] - cached
                self.usage["prompt_tokens_cached_total"] += cached
                self.usage["tokens_predicted_total"] += usage["completion_tokens"]

    async def stop(self) -> None:
        """Let the requests in flight finish (so the server's counters hold all of them), send no more."""
        self._stop.set()
        await asyncio.gather(*self._tasks)


def tenant_prompts(texts: Sequence[Text], tenants: int, chars: int) -> list[str]:
    """Each tenant's system prompt: an instruction, then consecutive texts (a tenant's own run of
    them) up to ``chars`` characters."""
    out = []
    per = max(1, len(texts) // tenants)
    for t in range(tenants):
        head = f"You are the assistant of tenant {t + 1}. Answer in one short sentence from these notes.\n\n"
        body, i = "", t * per
        while len(head) + len(body) < chars:
            text = texts[i % len(texts)]
            body += f"{text.title}. {text.body}\n"
            i += 1
        out.append((head + body)[:chars])
    return out


def schedule(
    conversations: int, tenants: int, turns: int, rate: float, think_s: float, seed: int = 0
) -> list[Conversation]:
    """The load every phase replays: Poisson arrivals (exponential gaps, scaled so that the last
    arrives at ``(conversations - 1) / rate``: the offered rate is ``rate`` whatever the draw),
    tenants in turn, questions and exponential think times, all drawn from ``seed``."""
    rng = random.Random(seed)
    gaps = [rng.expovariate(1.0) for _ in range(conversations - 1)]
    scale = (conversations - 1) / rate / sum(gaps) if gaps else 0.0
    out, at = [], 0.0
    for i in range(conversations):
        questions = tuple(rng.sample(QUESTIONS, min(turns, len(QUESTIONS))))
        thinks = tuple(rng.expovariate(1 / think_s) if think_s > 0 else 0.0 for _ in range(turns - 1))
        out.append(Conversation(at, i % tenants, questions, thinks))
        at += gaps[i] * scale if i < len(gaps) else 0.0
    return out


async def _turn(http: httpx.AsyncClient, url: str, messages: list[dict[str, str]], sample: Turn) -> str:
    """One streamed chat completion; fills ``sample`` (first content chunk, end, tokens, error)."""
    body = {"model": MODEL, "messages": messages, "stream": True, "stream_options": {"include_usage": True}}
    text: list[str] = []
    try:
        async with http.stream("POST", url, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                sample.error = f"HTTP {response.status_code}"
                return ""
            ended = False
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    ended = True
                    break
                chunk = json.loads(data)
                for choice in chunk.get("choices") or []:
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece and not sample.first:
                        sample.first = time.perf_counter()
                    text.append(piece)
                if chunk.get("usage"):
                    sample.tokens = int(chunk["usage"].get("completion_tokens") or 0)
            if not ended:
                sample.error = "stream without its end"
    except httpx.HTTPError as exc:
        sample.error = type(exc).__name__
    sample.done = time.perf_counter()
    sample.first = sample.first or sample.done  # an empty answer: its first token is its end
    return "".join(text).strip()


async def _converse(
    http: httpx.AsyncClient, url: str, index: int, conv: Conversation, system: str, start: float
) -> list[Turn]:
    messages = [{"role": "system", "content": system}]
    samples: list[Turn] = []
    due = start + conv.arrival_s
    for n, question in enumerate(conv.questions):
        if n:
            due = samples[-1].done + conv.think_s[n - 1]
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        messages.append({"role": "user", "content": question})
        sample = Turn(index, n, due)
        answer = await _turn(http, url, messages, sample)
        samples.append(sample)
        if sample.error:
            break  # a conversation whose turn failed goes no further
        messages.append({"role": "assistant", "content": answer or "…"})
    return samples


async def run_conversations(
    url: str, key: str, plan: list[Conversation], systems: Sequence[str], timeout_s: float = 600.0
) -> tuple[list[Turn], float, float]:
    """Every conversation of ``plan`` through the chat completions at ``url`` (…/v1); returns the
    turns and the perf_counter times of the first arrival and the last answer."""
    limits = httpx.Limits(max_connections=len(plan) + 4, max_keepalive_connections=len(plan) + 4)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits, headers=headers, trust_env=False) as http:
        start = time.perf_counter() + 0.05
        done = await asyncio.gather(
            *(
                _converse(http, url + "/chat/completions", i, conv, systems[conv.tenant], start)
                for i, conv in enumerate(plan)
            )
        )
    turns = [t for conv in done for t in conv]
    return turns, start, max((t.done for t in turns), default=start)
