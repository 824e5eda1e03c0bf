"""A collection's sources on its page, in a real browser against a real ``lamina serve``.

An admin adds two folder sources through the API (one missing, synced every 15 minutes), clicks
"Sync now" on the other and watches the section report the sync (its changes, no error) while the
documents table fills with the synced files, each showing its metadata and readers. A key of the
tenant without admin rights sees the sources but no button, and the route refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect

from tests.shared import RunningServer
from tests.system.ui.test_ui import (  # noqa: F401  (the browser fixtures: Chromium, the server's base URL)
    browser_context_args,
    browser_type_launch_args,
    csrf_of,
    sign_in,
)

COLLECTION = "ui-sources"
NOTE = "<script>alert(1)</script>"
TENANT = {"tenant": "a"}


@pytest.fixture
def synced_collection(served_process: RunningServer, tmp_path: Path) -> Iterator[Path]:
    """Tenant a's collection with two folder sources: "docs" (on demand) and "gone" (missing, every
    15 min), added by the admin through the API; deleted afterwards (its sources with it)."""
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "alpha.md").write_text("# Alpha\n\nThe alpha budget for 2025 was approved in March.\n")
    (folder / "beta.md").write_text("# Beta\n\nBeta travel rules: book trains for trips under 600 km.\n")
    with served_process.http("admin") as http:
        created = http.post("/v1/collections", params=TENANT, json={"name": COLLECTION})
        assert created.status_code in (201, 409), created.text
        source = {
            "name": "docs",
            "spec": {"kind": "folder", "path": str(folder)},
            "readers": ["finance"],
            "metadata": {"team": "finance", "note": NOTE},
        }
        added = http.post(f"/v1/collections/{COLLECTION}/sources", params=TENANT, json=source)
        assert added.status_code == 201, added.text
        gone = {"name": "gone", "spec": {"kind": "folder", "path": str(folder / "missing")}, "every_s": 900}
        assert http.post(f"/v1/collections/{COLLECTION}/sources", params=TENANT, json=gone).status_code == 201
        yield folder
        http.delete(f"/v1/collections/{COLLECTION}", params=TENANT)


def test_sync_now_shows_changes_and_document_metadata(
    page: Page, served_process: RunningServer, synced_collection: Path
) -> None:
    folder = synced_collection
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

    # alice (tenant a, no admin rights) sees the source, but may not sync it
    sign_in(page, served_process, "alice")
    page.goto(f"/collections/{COLLECTION}")
    row = page.locator("#sources tr[data-source=docs]")
    expect(row).to_contain_text("folder")
    expect(row).to_contain_text(str(folder))
    expect(row).to_contain_text("on demand")
    expect(row.locator(".last-sync")).to_contain_text("never")
    expect(page.get_by_role("button", name="Sync now")).to_have_count(0)
    refused = page.request.post(
        f"/collections/{COLLECTION}/sources/docs/sync", form={"csrf_token": csrf_of(page)}, max_redirects=0
    )
    assert refused.status == 403 and "admin" in refused.text()
    headers = {"HX-Request": "true", "X-CSRF-Token": csrf_of(page)}  # htmx: the refusal goes in its slot
    refused = page.request.post(f"/collections/{COLLECTION}/sources/docs/sync", headers=headers)
    assert refused.status == 403 and refused.headers["hx-retarget"] == "#sources-error"

    # the admin clicks "Sync now": requested, then synced, and the documents appear
    sign_in(page, served_process, "admin")
    page.goto(f"/collections/{COLLECTION}?tenant=a")
    expect(page.locator("#documents tbody tr")).to_have_count(0)
    page.get_by_role("button", name="Sync now (docs)").click()
    expect(page.locator("#sources .notice")).to_contain_text(re.compile("requested|synced"))
    row = page.locator("#sources tr[data-source=docs]")
    expect(row.locator(".last-sync .badge")).to_have_text("completed", timeout=30_000)
    expect(row.locator(".changes")).to_contain_text("+2")
    expect(row.locator(".changes")).to_contain_text("−0")
    expect(page.locator("#sources .notice")).to_contain_text("“docs” synced: completed")
    docs = page.locator("#documents tbody tr")
    expect(docs).to_have_count(2)
    alpha = docs.filter(has_text="alpha.md")
    expect(alpha.locator(".meta")).to_contain_text("path: alpha.md")
    expect(alpha.locator(".meta")).to_contain_text("team: finance")
    expect(alpha.locator(".badge.readers")).to_have_text("readers: finance")
    expect(page.locator("#collection-summary")).to_contain_text("2 documents")

    # a reload shows the same; the scheduled source whose folder is missing says so; markup stays text
    page.reload()
    expect(row.locator(".changes")).to_contain_text("+2")
    expect(row.locator("+ tr.source-problems")).to_have_count(0)  # no error, nothing failed
    broken = page.locator("#sources tr[data-source=gone]")
    expect(broken).to_contain_text("every 15 min")
    expect(broken.locator(".last-sync .badge")).to_have_text("failed")
    expect(broken.locator("+ tr.source-problems .error")).to_contain_text("not a folder")
    expect(alpha.locator(".meta")).to_contain_text(NOTE)
    assert page.locator("main script").count() == 0
    assert dialogs == []

    # without htmx, "Sync now" comes back to the page, which waits for the sync: nothing changed
    resp = page.request.post(
        row.locator("form").get_attribute("action") or "", form={"csrf_token": csrf_of(page)}, max_redirects=0
    )
    assert resp.status == 303 and "wait=docs" in resp.headers["location"]
    page.goto(resp.headers["location"])
    expect(page.locator("#sources .notice")).to_contain_text("“docs” synced: completed", timeout=30_000)
    expect(row.locator(".changes")).to_contain_text("=2")


def test_source_helpers() -> None:
    from lamina.ui.metadata import meta
    from lamina.ui.sources import every, target, watch

    assert [every(s) for s in (None, 60, 900, 7200, 86400, 90)] == [
        "on demand", "every minute", "every 15 min", "every 2 h", "every day", "every 90 s"
    ]  # fmt: skip
    assert target({"kind": "s3", "bucket": "b", "prefix": "p/"}) == "s3://b/p/"
    assert target({"kind": "git", "url": "https://x/r.git", "branch": "main"}) == "https://x/r.git @ main"
    given = {
        "modified": "2026-01-02T03:04:05Z",
        "path": "a.md",
        "size": 9,
        "team": "finance",
        "tags": ["x", "y"],
    }
    assert meta(given) == "team: finance · tags: x, y · path: a.md · +2 more"
    assert meta(given, 0, 0).endswith("modified: 2026-01-02 03:04 · size: 9")
    assert meta({"note": "n" * 60}) == "note: " + "n" * 39 + "…"

    def src(name: str, last: str | None, syncing: bool = False) -> dict[str, object]:
        return {"name": name, "last_sync_at": last, "syncing": syncing}

    asked = watch([src("a", "t1")], "a", "t1", asked=True)  # requested, not yet taken
    assert asked.polling and asked.asked and asked.ended is None
    assert watch([src("a", "t1", syncing=True)], "a", "t1").polling
    ended = watch([src("a", "t2"), src("b", None, syncing=True)], "a", "t1")
    assert ended.ended is not None and ended.ended["name"] == "a" and ended.name == "b"  # b is watched next
    assert not watch([src("a", "t1")]).polling
    assert not watch([src("a", "t1")], "a", "t1", polls=10_000).polling  # it gives up in the end
