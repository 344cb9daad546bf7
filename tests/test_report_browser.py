"""A real browser opens report.html: every image decodes, no console error, a screenshot.

Uses the system's Chromium (Debian's ``chromium``, installed by ``.ci/run``) through
Playwright's Python client; Playwright's own browser downloads are never used. Skipped with
the reason where no Chromium is installed. Set ``TEMPBENCH_SCREENSHOT_DIR`` to keep the
screenshots.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from reports.i18n import Messages
from reports.render import render_run
from tests.report_rows import claim_records, make_run

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium on PATH (apt-get install -y chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (dev extra) not installed")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        yield browser
        browser.close()


@pytest.mark.parametrize("lang", ["en", "es"])
def test_report_opens_in_chromium_with_every_image_decoded_and_no_console_error(
    browser, tmp_path: Path, lang: str
) -> None:
    run_dir = make_run(tmp_path / "run")
    report = render_run(run_dir, lang=lang).report_html
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    page.goto(report.as_uri(), wait_until="load")

    images = page.evaluate(
        "Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0,"
        " w: i.naturalWidth}))"
    )
    assert len(images) >= 6
    assert all(img["ok"] for img in images), images
    assert problems == []

    # the verdict is the first thing a reader sees
    first = page.evaluate("document.querySelector('main section h2').textContent")
    assert first == ("Verdict" if lang == "en" else "Veredicto")
    # a matrix cell links to its evidence, which lists rows that exist on the page
    page.click("table.matrix td.bad a.cell-link >> nth=0")
    anchor = page.evaluate("location.hash")
    assert anchor.startswith("#cell-")
    rows = page.evaluate(
        f"Array.from(document.querySelectorAll('{anchor} .rows a')).map(a => a.getAttribute('href'))"
    )
    assert rows and all(page.query_selector(href) is not None for href in rows)

    page.goto(report.as_uri(), wait_until="load")
    shot = tmp_path / f"report-{lang}.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("TEMPBENCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
        page.screenshot(path=str(Path(keep) / f"report-{lang}-full.png"), full_page=True)
    page.close()


RATING_EMOJI = ("✅", "⚠", "❌", "❔")


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_rating_symbol_is_drawn_with_its_label_and_needs_no_emoji_font(
    browser, tmp_path: Path, lang: str
) -> None:
    """The symbols are SVG shapes plus a word: visible and sized without any emoji font
    (this Chromium has none), in every place a rating is shown."""
    report = render_run(make_run(tmp_path / "run"), lang=lang).report_html
    t = Messages(lang)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(report.as_uri(), wait_until="load")
    symbols = page.evaluate("""Array.from(document.querySelectorAll('.sym')).map(s => {
        const icon = s.querySelector('svg.sym-icon').getBoundingClientRect();
        const label = s.querySelector('.sym-label');
        const box = label.getBoundingClientRect();
        const style = getComputedStyle(s);
        return {rating: s.dataset.rating, w: icon.width, h: icon.height, label: label.textContent,
                lw: box.width, lh: box.height, shown: style.visibility !== 'hidden' && style.display !== 'none',
                region: s.closest('section[id]').id};
    })""")
    assert len(symbols) > 100
    for s in symbols:
        assert s["shown"] and s["w"] > 0 and s["h"] > 0, s
        assert s["lw"] > 0 and s["lh"] > 0 and s["label"] == t(f"rating_{s['rating']}"), s
    regions = {s["region"] for s in symbols}
    assert {"verdict", "matrix", "review", "method", "cells"} <= regions, regions
    assert {s["rating"] for s in symbols} == {"good", "warn", "bad", "unknown"}
    text = page.evaluate("document.body.innerText")
    assert not [e for e in RATING_EMOJI if e in text]
    # drawn, not typeset: a "bad" symbol's own pixels are red whatever fonts exist
    shot = page.locator("table.matrix .sym-bad svg >> nth=0").screenshot()
    colours = Image.open(io.BytesIO(shot)).convert("RGB").getcolors(maxcolors=1 << 16) or []
    assert any(r > 150 and g < 90 and b < 90 for _, (r, g, b) in colours)
    page.close()


@pytest.mark.parametrize("lang", ["en", "es"])
def test_report_html_names_no_rating_by_emoji_while_matrix_md_keeps_them(tmp_path: Path, lang: str) -> None:
    """Without a browser too: every rating in report.html is the drawn symbol."""
    written = render_run(make_run(tmp_path / "run"), lang=lang)
    page = written.report_html.read_text(encoding="utf-8")
    assert [e for e in RATING_EMOJI if e in page] == []
    assert page.count('<svg class="sym-icon"') == page.count('class="sym-label"') > 100
    assert any(e in written.matrix_md.read_text(encoding="utf-8") for e in RATING_EMOJI)


@pytest.mark.parametrize(("lang", "title"), [("en", "The review, claim by claim"),
                                             ("es", "La revisión, afirmación por afirmación")])
def test_the_claims_section_renders_every_claim_with_its_status_and_evidence(
    browser, tmp_path: Path, lang: str, title: str
) -> None:
    from reports.claims import STATUSES, load_ledger

    run_dir = make_run(tmp_path / "run", claim_records())
    report = render_run(run_dir, lang=lang).report_html
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.goto(report.as_uri(), wait_until="load")

    assert page.inner_text("#claims h2") == title
    claims = page.evaluate(
        "Array.from(document.querySelectorAll('#claims tr[data-status]')).map(tr => ({"
        " id: tr.id, status: tr.dataset.status, section: tr.closest('section').id,"
        " badge: tr.querySelector('.status').innerText, visible: tr.offsetHeight > 0,"
        " links: Array.from(tr.querySelectorAll('.rows a')).map(a => a.getAttribute('href'))}))"
    )
    assert len(claims) == len(load_ledger().claims)
    assert all(c["visible"] and c["badge"].strip() for c in claims)
    for section in {c["section"] for c in claims}:  # refuted first, then partly, supported...
        order = [STATUSES.index(c["status"]) for c in claims if c["section"] == section]
        assert order == sorted(order), section
    linked = [c for c in claims if c["links"]]
    assert linked and all(page.query_selector(href) is not None for c in linked for href in c["links"])
    page.click(f"#{linked[0]['id']} .rows a >> nth=0")
    assert page.evaluate("location.hash") == linked[0]["links"][0]
    summary = page.inner_text("#claims .claims-summary")
    assert summary.startswith("of " if lang == "en" else "de ")
    assert problems == []
    page.close()
