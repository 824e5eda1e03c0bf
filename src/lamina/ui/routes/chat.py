"""The chat page: ask with or without a collection, watch the answer stream, open what it cites.

Asking is a POST (CSRF-checked) that stores a pending turn and answers its HTML at once; the turn's
element then opens an event stream that runs the question through the server's own API and relays the
answer token by token, then the answer again with its citation markers and sources.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from markupsafe import escape

from lamina.serve.openai.serving_embedding import list_models
from lamina.ui import sse
from lamina.ui.citations import by_document, cited, copy_text, relative, segments
from lamina.ui.pages import is_htmx
from lamina.ui.relay import Delta, Failed, Final, chat_stream, own_url
from lamina.ui.session import CheckedDep, Session, SessionDep, UIDep
from lamina.ui.store import Conversation, Turn

router = APIRouter(include_in_schema=False)
MAX_QUESTION = 8000
MEMORY_TURNS = 3  # earlier turns sent along, for follow-up questions
INTERRUPTED = "The answer was interrupted: the page was closed or reloaded before it ended."
REPLAY_WAIT_S, REPLAY_WAIT_STEPS = 0.25, 20


async def choices(ui: UIDep, session: Session) -> tuple[list[dict[str, Any]], list[str]]:
    """(models the key may chat with, as ``/v1/models`` lists them; its own tenant's collections).

    Grounded chat reads the key's own tenant, so an admin chats with its own tenant's collections.
    """
    principal = session.principal
    listed = (await list_models(ui.state, principal)).data
    models = [m.model_dump() for m in listed if m.kind in ("chat", "completion")]
    own = await ui.state.services.collections.list(principal, principal.tenant)
    return models, [c["name"] for c in own]


def answer_context(request: Request, turn: Turn) -> dict[str, Any]:
    """What ``_answer.html`` shows for a finished turn."""
    sources = cited(turn.answer, turn.citations)
    known = {int(c["n"]) for c in sources}
    return {
        "turn": turn,
        "segments": segments(turn.answer, known),
        "sources": sources,
        "documents": by_document(sources),
        "by_n": {int(c["n"]): c for c in sources},
        "nothing_relevant": bool(turn.collection) and turn.grounding.get("grounded") is False,
        "copy_text": copy_text(turn.answer, sources, str(request.base_url)),
    }


@router.get("/")
async def home(
    request: Request, ui: UIDep, session: SessionDep, collection: str = "", model: str = ""
) -> Response:
    return await _page(request, ui, session, None, collection, model)


@router.get("/chat/{conversation_id}")
async def conversation_page(
    request: Request, conversation_id: str, ui: UIDep, session: SessionDep
) -> Response:
    conv = await asyncio.to_thread(ui.store.get, session.owner, conversation_id)
    if conv is None:
        return ui.pages.render(
            request, "error.html", status=404, session=session, message="This conversation does not exist."
        )
    return await _page(request, ui, session, conv, "", "")


async def _page(
    request: Request, ui: UIDep, session: Session, conv: Conversation | None, collection: str, model: str
) -> Response:
    models, collections = await choices(ui, session)
    convs = await asyncio.to_thread(ui.store.recent, session.owner)
    turns = await asyncio.to_thread(ui.store.turns, conv.id) if conv else []
    if turns:
        model, collection = model or turns[-1].model, collection or (turns[-1].collection or "")
    default = ui.state.settings.default_model
    names = [m["id"] for m in models]
    return ui.pages.render(
        request,
        "chat.html",
        session=session,
        page="chat",
        conversations=convs,
        conversation=conv,
        turns=[answer_context(request, t) for t in turns],
        models=models,
        collections=collections,
        model=model if model in names else (default if default in names else (names or [""])[0]),
        collection=collection if collection in collections else "",
    )


@router.post("/chat")
async def ask(
    request: Request,
    ui: UIDep,
    session: CheckedDep,
    question: Annotated[str, Form()] = "",
    model: Annotated[str, Form()] = "",
    collection: Annotated[str, Form()] = "",
    conversation: Annotated[str, Form()] = "",
) -> Response:
    question = question.strip()
    error = ""
    if not question:
        error = "Type a question first."
    elif len(question) > MAX_QUESTION:
        error = f"The question is too long ({len(question):,} characters; at most {MAX_QUESTION:,})."
    elif not model:
        error = "Pick a model."
    conv = await asyncio.to_thread(ui.store.get, session.owner, conversation) if conversation else None
    if error:
        if is_htmx(request):
            headers = {"HX-Retarget": "#ask-error", "HX-Reswap": "innerHTML"}
            return ui.pages.render(request, "_error.html", status=400, headers=headers, message=error)
        return ui.pages.render(request, "error.html", status=400, session=session, message=error)
    if conv is None:
        conv = await asyncio.to_thread(ui.store.create, session.owner, question)
    turn = await asyncio.to_thread(ui.store.ask, conv, question, model, collection or None)
    if not is_htmx(request):
        return RedirectResponse(f"/chat/{conv.id}", status_code=303)
    convs = await asyncio.to_thread(ui.store.recent, session.owner)
    return ui.pages.render(
        request,
        "_asked.html",
        headers={"HX-Push-Url": f"/chat/{conv.id}"},
        session=session,
        t=answer_context(request, turn),
        conversation=conv,
        conversations=convs,
    )


@router.post("/chat/{conversation_id}/delete")
async def delete_conversation(conversation_id: str, ui: UIDep, session: CheckedDep) -> Response:
    await asyncio.to_thread(ui.store.delete, session.owner, conversation_id)
    return RedirectResponse("/", status_code=303)


@router.get("/chat/turns/{turn_id}/stream")
async def stream_turn(request: Request, turn_id: str, ui: UIDep, session: SessionDep) -> Response:
    turn = await asyncio.to_thread(ui.store.turn, session.owner, turn_id)
    if turn is None:
        return Response("no such turn", status_code=404, media_type="text/plain")
    claimed = turn.status == "pending" and await asyncio.to_thread(ui.store.claim, turn.id)
    if not claimed:
        return sse.stream(_replay(request, ui, session, turn))
    history = await asyncio.to_thread(ui.store.turns, turn.conversation_id)
    return sse.stream(_answer(request, ui, session, turn, history))


async def _replay(request: Request, ui: UIDep, session: Session, turn: Turn) -> AsyncIterator[bytes]:
    """A turn already answered, or being answered elsewhere: its state once that stream ends, then the end.

    A reload mid-answer lands here: the old stream ends (keeping what it had shown) a moment later.
    """
    for _ in range(REPLAY_WAIT_STEPS):
        if turn.status != "streaming":
            break
        await asyncio.sleep(REPLAY_WAIT_S)
        latest = await asyncio.to_thread(ui.store.turn, session.owner, turn.id)
        turn = latest or turn
    if turn.status == "streaming":
        turn.status, turn.error = "failed", "This answer is being written in another tab or window."
    yield sse.event("final", ui.pages.html("_answer.html", t=answer_context(request, turn)))
    yield sse.event("done", "")


def _messages(turn: Turn, history: list[Turn]) -> list[dict[str, str]]:
    earlier = [
        t for t in history if t.status == "done" and t.created_at <= turn.created_at and t.id != turn.id
    ]
    messages: list[dict[str, str]] = []
    for t in earlier[-MEMORY_TURNS:]:
        messages += [{"role": "user", "content": t.question}, {"role": "assistant", "content": t.answer}]
    return [*messages, {"role": "user", "content": turn.question}]


async def _settle(ui: UIDep, turn: Turn, ev: Final | Failed) -> None:
    """Record how the answer ended."""
    if isinstance(ev, Final):
        turn.status, turn.answer, turn.citations, turn.grounding = "done", ev.text, ev.citations, ev.grounding
    else:
        turn.status, turn.answer, turn.error = "failed", ev.text, ev.message
    await asyncio.to_thread(
        ui.store.finish,
        turn.id,
        answer=turn.answer,
        status=turn.status,
        citations=turn.citations,
        grounding=turn.grounding,
        error=turn.error,
    )


async def _answer(
    request: Request, ui: UIDep, session: Session, turn: Turn, history: list[Turn]
) -> AsyncIterator[bytes]:
    body: dict[str, Any] = {"model": turn.model, "messages": _messages(turn, history)}
    if turn.collection:
        body["collection"] = turn.collection
    shown: list[str] = []
    ended = False
    try:
        # aclosing: a reader who leaves also ends the request to the model
        async with aclosing(chat_stream(own_url(request), session.key, body)) as events:
            async for ev in events:
                if isinstance(ev, Delta):
                    shown.append(ev.text)
                    yield sse.event("token", str(escape(ev.text)))
                    continue
                await _settle(ui, turn, ev)
                ended = True
                yield sse.event("final", ui.pages.html("_answer.html", t=answer_context(request, turn)))
        yield sse.event("done", "")
    finally:
        if not ended:  # the reader left mid-answer: keep what was shown, say it was cut
            ui.store.finish(turn.id, answer="".join(shown), status="failed", error=INTERRUPTED)


@router.get("/chat/turns/{turn_id}/citations/{n}")
async def citation(request: Request, turn_id: str, n: int, ui: UIDep, session: SessionDep) -> Response:
    turn = await asyncio.to_thread(ui.store.turn, session.owner, turn_id)
    found = [c for c in (turn.citations if turn else []) if int(c.get("n", -1)) == n]
    if turn is None or not found:
        return ui.pages.render(request, "error.html", status=404, session=session, message="No such source.")
    c = found[0] | {"url": relative(str(found[0].get("url", "")))}
    template = "_citation.html" if is_htmx(request) else "citation.html"
    return ui.pages.render(request, template, session=session, page="chat", c=c, turn=turn)
