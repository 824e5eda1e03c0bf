"""The web UI in a real browser (Debian's Chromium through Playwright) against a real ``lamina serve``.

What a person does: sign in with the printed link, create a collection, drop files and watch them reach
done, search, ask a question and watch the answer stream, open a citation and land on the original,
see usage change, manage keys. Plus what must never happen: a wrong key let in, a form posted without
its CSRF token, a document's ``<script>`` run.

Screenshots go to a temporary folder; with ``UI_SCREENSHOTS=1`` they refresh ``docs/screenshots``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect

import lamina
from tests.shared import RunningServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("the UI tests need Chromium (make browser)", allow_module_level=True)

SAMPLES = Path(lamina.__file__).parent / "samples"
DOCS_SHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
WRITE_DOCS = os.environ.get("UI_SCREENSHOTS") == "1"
HANDBOOK = "ui-handbook"
QUESTION = "What happens if an ingestion is interrupted?"
SCRIPT_DOC = (
    b"# Release notes\n\nThe parser now keeps inline markup such as <script>alert(1)</script> as text.\n"
)
PAGE_BUDGET = 100_000  # bytes transferred for the first page


# browser ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": ["--no-sandbox"],
    }


@pytest.fixture(scope="session")
def browser_context_args(
    browser_context_args: dict[str, Any], served_process: RunningServer
) -> dict[str, Any]:
    return {
        **browser_context_args,
        "viewport": {"width": 1280, "height": 800},
        "base_url": served_process.server.root,
    }


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if WRITE_DOCS:
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SHOTS
    return tmp_path_factory.mktemp("screenshots")


def sign_in(page: Page, served_process: RunningServer, who: str) -> None:
    """The link ``lamina serve`` prints, in one click."""
    page.goto(f"/login?key={served_process.keys[who]}")
    page.wait_for_url(f"{served_process.server.root}/")
    expect(page.locator(".whoami")).to_contain_text(who)


def csrf_of(page: Page) -> str:
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    assert token
    return token


def unlabelled(page: Page) -> list[str]:
    """Controls a screen reader could not name."""
    found: list[str] = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a')]
        .filter(el => {
          if (el.tagName === 'BUTTON' || el.tagName === 'A')
            return !(el.textContent.trim() || el.getAttribute('aria-label'));
          return !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
            && !el.getAttribute('aria-labelledby');
        }).map(el => el.outerHTML.slice(0, 120))"""
    )
    return found


def wait_job(http: httpx.Client, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in ("completed", "failed", "cancelled", "interrupted"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def handbook(served_process: RunningServer) -> str:
    """Alice's collection of the bundled samples, made through the API (the chat tests need one)."""
    with served_process.http("alice") as http:
        assert http.post("/v1/collections", json={"name": HANDBOOK}).status_code in (201, 409)
        files = [("files", (p.name, p.read_bytes())) for p in sorted(SAMPLES.iterdir()) if p.is_file()]
        job = http.post(f"/v1/collections/{HANDBOOK}/documents", files=files).json()
        assert wait_job(http, job["id"])["state"] == "completed"
    return HANDBOOK


# sign-in ------------------------------------------------------------------------------------------
def test_wrong_key_is_refused(page: Page, served_process: RunningServer, shots: Path) -> None:
    resp = page.goto("/login?key=lam_not-a-real-key")
    assert resp is not None and resp.status == 401
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.fill("#key", "lam_still-wrong")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as posted:
        page.click("button:has-text('Sign in')")
    assert posted.value.status == 401
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    page.screenshot(path=shots / "login.png")
    assert not [c for c in page.context.cookies() if c["name"] == "lamina_session"]
    page.goto("/collections")  # still signed out: pages send you to the login page
    expect(page).to_have_url(re.compile(r"/login\?next=/collections$"))


def test_login_form_signs_in_and_out(page: Page, served_process: RunningServer) -> None:
    page.goto("/login")
    page.fill("#key", served_process.keys["bob"])
    page.click("button:has-text('Sign in')")
    expect(page.locator(".whoami")).to_contain_text("bob")
    cookie = next(c for c in page.context.cookies() if c["name"] == "lamina_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("button:has-text('Sign out')")
    expect(page.get_by_role("status")).to_contain_text("signed out")
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login"))


def test_first_page_is_light(
    browser: Browser, served_process: RunningServer, browser_context_args: dict[str, Any]
) -> None:
    context = browser.new_context(**browser_context_args)
    page = context.new_page()
    responses: list[Response] = []
    page.on("response", lambda r: responses.append(r))
    sign_in(page, served_process, "alice")
    page.wait_for_load_state("networkidle")
    total = 0
    for r in responses:
        r.finished()
        sizes = r.request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    context.close()
    print(f"\nfirst page: {total} bytes transferred in {len(responses)} responses")
    assert total < PAGE_BUDGET, f"first page weighs {total} bytes"


def test_csrf_token_is_required(page: Page, served_process: RunningServer) -> None:
    sign_in(page, served_process, "alice")
    page.goto("/collections")
    token = csrf_of(page)
    refused = page.request.post("/collections", form={"name": "ui-forged"}, max_redirects=0)
    assert refused.status == 403
    assert page.request.post("/collections", form={"name": "ui-forged", "csrf_token": "0" * 64}).status == 403
    assert page.request.post("/logout", max_redirects=0).status == 403
    ok = page.request.post("/collections", form={"name": "ui-forged", "csrf_token": token}, max_redirects=0)
    assert ok.status == 303
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}  # htmx sends it as a header
    assert page.request.post("/collections/ui-forged/delete", headers=headers, max_redirects=0).status == 303


# collections --------------------------------------------------------------------------------------
def test_upload_shows_progress_and_search_escapes(
    page: Page, served_process: RunningServer, shots: Path, tmp_path: Path
) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, served_process, "alice")
    page.click("nav >> text=Collections")
    page.fill("#new-name", "no spaces allowed")
    page.click("button:has-text('Create')")
    expect(page.get_by_role("alert")).to_contain_text("invalid")
    page.fill("#new-name", "ui-upload")
    page.click("button:has-text('Create')")
    expect(page).to_have_url(re.compile(r"/collections/ui-upload$"))
    assert unlabelled(page) == []
    (tmp_path / "release-notes.md").write_bytes(SCRIPT_DOC)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.7 this is not a pdf")
    files = [*sorted(SAMPLES.iterdir()), tmp_path / "release-notes.md", tmp_path / "broken.pdf"]
    page.set_input_files("#files", files)
    page.click("#upload-button")
    job = page.locator(".job").first
    expect(job.locator(".file")).to_have_count(len(files))
    page.screenshot(path=shots / "collection-upload.png")
    page.reload()  # the job list shows the job again, and its progress goes on
    job = page.locator(".job").first
    expect(job.locator(".job-head .badge")).to_have_text("completed", timeout=60_000)
    expect(job.locator(".file", has_text="release-notes.md").locator(".badge")).to_have_text("done")
    broken = job.locator(".file", has_text="broken.pdf")
    expect(broken.locator(".badge")).to_have_text(re.compile("failed|skipped"))
    expect(broken.locator(".detail")).not_to_be_empty()
    expect(page.locator("#documents tbody tr")).to_have_count(len(files) - 1)
    expect(page.locator("#collection-summary")).to_contain_text(f"{len(files) - 1} documents")

    page.fill("#q", "inline markup script")
    page.click("button:has-text('Search')")  # hybrid: the fused score and each mode's
    hit = page.locator(".hit", has_text="release-notes.md").first
    expect(hit).to_contain_text("<script>alert(1)</script>")  # shown as text…
    expect(hit.locator(".score", has_text="bm25")).to_have_count(1)
    expect(hit.locator(".score", has_text="dense")).to_have_count(1)
    assert page.locator(".hit-text script").count() == 0  # …never as an element
    page.wait_for_timeout(300)
    assert dialogs == []
    page.screenshot(path=shots / "collection.png", full_page=True)

    page.goto("/collections")
    row = page.locator("tr", has_text="ui-upload")
    expect(row).to_contain_text(str(len(files) - 1))
    expect(row).to_contain_text("all-MiniLM")
    page.screenshot(path=shots / "collections.png", full_page=True)

    page.goto("/collections/ui-upload")
    page.click("text=Delete this collection")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Delete")
    page.click("button:has-text('Delete the collection')")
    expect(page.get_by_role("status")).to_contain_text("Deleted")
    expect(page.locator("tr", has_text="ui-upload")).to_have_count(0)


def test_tenants_see_only_their_collections(page: Page, served_process: RunningServer, handbook: str) -> None:
    sign_in(page, served_process, "bob")
    page.goto("/collections")
    expect(page.locator("main")).not_to_contain_text(handbook)
    resp = page.goto(f"/collections/{handbook}")
    assert resp is not None and resp.status == 404
    page.goto("/")
    assert handbook not in page.locator("#collection").inner_text()
    assert page.locator("nav >> text=Keys").count() == 0
    resp = page.goto("/keys")
    assert resp is not None and resp.status == 403


# chat ---------------------------------------------------------------------------------------------
def test_answer_streams_and_cites(
    page: Page, served_process: RunningServer, handbook: str, shots: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.add_init_script(
        "window.__sse = [];"
        "document.addEventListener('htmx:sseMessage', e => window.__sse.push(e.detail.type));"
    )
    sign_in(page, served_process, "alice")
    assert unlabelled(page) == []
    page.select_option("#model", "stub")  # a plain question: the stub's words arrive one by one
    page.fill("#question", "Say hello")
    page.keyboard.press("Enter")
    expect(page.locator(".turn .answer:not(.streaming)")).to_have_count(1, timeout=30_000)
    expect(page.locator(".turn .answer-text").first).to_have_text("Hello from the stub.")
    assert page.evaluate("window.__sse.filter(t => t === 'token').length") >= 3

    page.goto(f"/?collection={handbook}")
    page.select_option("#model", "stub")
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    answer = page.locator(".turn .answer:not(.streaming)").last
    expect(answer.locator(".answer-text .cite").first).to_be_visible(timeout=30_000)
    expect(page).to_have_url(re.compile(r"/chat/c_[0-9a-f]+$"))
    expect(page.locator("#conversation-list a").first).to_contain_text("interrupted")

    # only cited sources, each document once
    markers = {int(m) for m in answer.locator(".answer-text .cite").all_inner_texts()}
    listed = answer.locator(".sources li")
    titles = listed.locator(".doc-title").all_inner_texts()
    assert len(titles) == len(set(titles)) >= 1
    assert {int(t.split(" ")[0]) for t in listed.locator(".cite").all_inner_texts()} == markers

    # hover previews the passage; focus does too
    marker = answer.locator(".answer-text .cite").first
    marker.hover()
    expect(answer.locator(".answer-text .tip").first).to_be_visible()
    page.mouse.move(0, 0)
    marker.focus()
    expect(answer.locator(".answer-text .tip").first).to_be_visible()

    # the keyboard opens the side panel; Escape closes it and returns to the marker
    page.keyboard.press("Enter")
    panel = page.locator("#side-panel")
    expect(panel.get_by_role("heading", name=re.compile(r"Source \d+"))).to_be_focused()
    expect(panel).to_contain_text("Score")
    expect(panel).to_contain_text("ingestion")
    page.keyboard.press("Escape")
    expect(panel).to_be_empty()
    expect(marker).to_be_focused()

    marker.click()
    link = panel.locator("#open-original")
    expect(link).to_have_attribute("href", re.compile(rf"^/v1/collections/{handbook}/documents/\w+/content"))
    page.screenshot(path=shots / "chat.png")
    with page.context.expect_page() as opened:
        link.click()
    original = opened.value
    original.wait_for_load_state()
    assert f"/v1/collections/{handbook}/documents/" in original.url
    assert "Lamina" in original.content() or "ingest" in original.content().lower()
    original.close()

    answer.locator("button:has-text('Copy answer with citations')").click()
    expect(answer.locator(".copied")).to_have_text("Copied.")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "Sources:" in copied and f"[{min(markers)}]" in copied and "/content" in copied

    # the conversation is kept: reload, and it is all there
    page.reload()
    expect(page.locator(".turn")).to_have_count(1)
    expect(page.locator(".turn .answer-text .cite").first).to_be_visible()


def test_a_scanned_invoice_is_answered_and_its_passage_says_ocr(
    page: Page, served_process: RunningServer
) -> None:
    """A photo of an invoice uploaded through the API, asked in the UI: the cited passage says it was
    read by OCR, and the original opens as the image."""
    from lamina.testing.scans import render, save, scanned
    from tests.data.test_ocr import INVOICE

    with served_process.http("alice") as http:
        assert http.post("/v1/collections", json={"name": "ui-scans"}).status_code in (201, 409)
        photo = save([scanned(render(INVOICE))], "jpeg")
        job = http.post(
            "/v1/collections/ui-scans/documents", files=[("files", ("invoice.jpg", photo))]
        ).json()
        assert wait_job(http, job["id"])["state"] == "completed"
    sign_in(page, served_process, "alice")
    page.goto("/?collection=ui-scans")
    page.fill("#question", "What is the unit price of the bilge pump?")
    page.click("#ask-button")
    answer = page.locator(".turn .answer:not(.streaming)").last
    expect(answer.locator(".answer-text")).to_contain_text("212.75", timeout=60_000)
    answer.locator(".answer-text .cite").first.click()
    panel = page.locator("#side-panel")
    expect(panel.locator("#passage-ocr")).to_contain_text("Read by OCR")
    expect(panel.locator("#open-original")).to_have_attribute("href", re.compile(r"/documents/\w+/content"))


def test_nothing_relevant_is_said_so(page: Page, served_process: RunningServer, handbook: str) -> None:
    sign_in(page, served_process, "alice")
    page.goto(f"/?collection={handbook}")
    page.select_option("#model", "stub")
    page.fill("#question", "zxqv wubble frobnicate plinth")
    page.click("#ask-button")
    answer = page.locator(".turn .answer.nothing")
    expect(answer).to_contain_text("Nothing relevant", timeout=30_000)
    expect(answer.locator(".sources")).to_have_count(0)


def test_phone_width(browser: Browser, served_process: RunningServer, handbook: str, shots: Path) -> None:
    context: BrowserContext = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=served_process.server.root
    )
    page = context.new_page()
    sign_in(page, served_process, "alice")
    page.goto(f"/?collection={handbook}")
    page.select_option("#model", "stub")
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    expect(page.locator(".turn .answer-text .cite").first).to_be_visible(timeout=30_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.locator(".turn .answer-text .cite").first.click()
    expect(page.locator("#open-original")).to_be_visible()
    page.screenshot(path=shots / "chat-phone.png")
    context.close()


@pytest.mark.parametrize("who", ["alice", "admin"])
def test_collections_fit_phone_width(
    browser: Browser, served_process: RunningServer, handbook: str, who: str
) -> None:
    """The table scrolls inside its wrapper; the page itself is never wider than a phone."""
    context: BrowserContext = browser.new_context(
        viewport={"width": 390, "height": 844}, base_url=served_process.server.root
    )
    page = context.new_page()
    sign_in(page, served_process, who)
    page.goto("/collections")
    expect(page.locator("table")).to_contain_text(handbook)
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
        .filter(el => el.getBoundingClientRect().right > 391)
        .map(el => el.tagName + '.' + el.className + ' ' + Math.round(el.getBoundingClientRect().right))
        .slice(0, 8)"""
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, " | ".join(map(str, wide))
    context.close()


# usage and keys -----------------------------------------------------------------------------------
def log_rows(page: Page) -> int:
    return page.locator("table.log tbody tr").count()


def test_usage_changes_after_requests(page: Page, served_process: RunningServer, shots: Path) -> None:
    sign_in(page, served_process, "alice")
    page.goto("/usage")
    before = log_rows(page)
    client = served_process.client("alice")
    for _ in range(2):
        client.chat.completions.create(model="stub", messages=[{"role": "user", "content": "hi"}])
    page.reload()
    assert log_rows(page) == min(before + 2, 50)
    chart = page.locator("figure.chart", has_text="Requests")
    expect(chart.locator("svg title")).to_have_text("Requests")
    expect(chart.locator("polyline")).not_to_have_count(0)
    expect(chart.locator(".legend")).to_contain_text("stub")
    assert unlabelled(page) == []
    page.screenshot(path=shots / "usage.png", full_page=True)

    page.goto("/usage?range=1h&by=key")
    expect(page.locator("figure.chart", has_text="Tokens").locator(".legend")).to_contain_text("alice")
    page.select_option("#f-status", "error")
    page.click("button:has-text('Filter')")
    assert all(int(s) >= 400 for s in page.locator("table.log tbody td.num:nth-child(5)").all_inner_texts())
    page.goto("/usage?model=stub")
    page.locator("table.log tbody a").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("/v1/chat/completions")
    expect(page.locator("dl.facts")).to_contain_text("req_")
    assert page.locator("section.trace").count() == 0  # no spans kept: the slot stays empty


def test_admin_manages_keys(page: Page, served_process: RunningServer, browser: Browser, shots: Path) -> None:
    sign_in(page, served_process, "admin")
    page.click("nav >> text=Keys")
    assert unlabelled(page) == []
    page.fill("#k-name", "ui-carol")
    page.fill("#k-tenant", "a")
    page.check("input[name=models][value=stub]")
    page.fill("#k-budget", "5")
    page.fill("#k-rpm", "60")
    page.click("button:has-text('Create key')")
    expect(page.get_by_role("heading", level=1)).to_contain_text("ui-carol")
    secret = page.locator("#secret").input_value()
    login = page.locator("#secret-login").input_value()
    assert secret.startswith("lam_") and login.endswith(secret)

    other = browser.new_context(base_url=served_process.server.root)
    carol = other.new_page()
    carol.goto(login)
    expect(carol.locator(".whoami")).to_contain_text("ui-carol")
    other.close()

    page.goto("/keys")
    row = page.locator("tr", has_text="ui-carol")
    expect(row).to_contain_text("$5.00")
    expect(row).to_contain_text("60 req/min")
    page.screenshot(path=shots / "keys.png", full_page=True)
    row.locator("text=Revoke").click()
    page.click("button:has-text('Revoke the key')")
    expect(page.get_by_role("status")).to_contain_text("Revoked")
    expect(page.locator("tr", has_text="ui-carol")).to_have_count(0)
    revoked = httpx.get(
        f"{served_process.server.root}/v1/models", headers={"Authorization": f"Bearer {secret}"}
    )
    assert revoked.status_code == 401
