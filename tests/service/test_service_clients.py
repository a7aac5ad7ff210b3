"""The service's two ready-made clients against a running service: the web page, driven in
headless Chromium, and the Telegram bot, talking to a fake Bot API server on loopback."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakebotapi import TOKEN, FakeBotAPI
from PIL import Image
from playwright.sync_api import Page
from servicekit import OFFLINE_STAGES, TINY_JOB, ServiceProcesses, make_settings

from portraitist import samples

JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcesses]:
    """One API and one worker on SQLite, shared by the clients below."""
    tmp = tmp_path_factory.mktemp("service")
    # nearly every progress event written (not one per 0.2 s): on a quiet machine the tiny job's 4 training
    # steps fit in one interval, and the page's bar would jump from 0 to done
    settings = make_settings(tmp, {}, job_defaults=OFFLINE_STAGES, progress_interval_s=0.001)
    processes = ServiceProcesses(settings, tmp)
    processes.start_api()
    processes.start_worker()
    yield processes
    processes.stop()


def test_the_web_page_uploads_shows_progress_and_the_portraits(
    service: ServiceProcesses, sample_photos: list[Path], tmp_path: Path, browser_page: Page
) -> None:
    page = browser_page
    no_person = tmp_path / "coffee.jpg"
    samples.no_person().save(no_person)
    page.goto(service.url)
    page.click("#signup")
    page.wait_for_selector("#app:not([hidden])")
    token = page.text_content("#new-token-value")
    assert token and "." in token

    page.set_input_files("#files", [*map(str, sample_photos[:5]), str(no_person)])
    page.wait_for_selector("#upload-results figure >> nth=5")
    captions = page.locator("#upload-results figcaption").all_text_contents()
    assert sum(c.startswith("✓") for c in captions) == 5
    assert [c for c in captions if c.startswith("✗")] == [
        "✗ coffee.jpg: No person was found in this photo. (no_person)"
    ]
    assert page.text_content("#photo-count") == "5 photos stored."

    for box in page.locator("#styles input").all():
        box.set_checked(box.get_attribute("value") == "photo")
    page.click("details summary")
    page.select_option("#base", "tiny")
    page.fill("#n", str(TINY_JOB["n"]))
    page.fill("#k", "2")
    page.fill("#steps", str(TINY_JOB["steps"]))
    # what the progress line and bar show, every time the line changes
    page.evaluate("""window.seen = [];
        new MutationObserver(() => seen.push([document.getElementById('job-status').textContent,
                                              document.getElementById('bar').value]))
            .observe(document.getElementById('job-status'),
                     {childList: true, characterData: true, subtree: true});""")
    page.click("#start")
    page.wait_for_selector("#results-section:not([hidden])", timeout=JOB_TIMEOUT * 1000)
    seen = page.evaluate("window.seen")
    assert any(text.startswith("running · train") for text, _ in seen), seen
    assert any(0 < bar < 1 for _, bar in seen), seen
    assert seen[-1][0].startswith("succeeded") and seen[-1][1] == 1
    page.wait_for_function(
        "[...document.querySelectorAll('#portraits img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("#portraits img").count() == 2
    assert page.locator("#portraits a[download]").count() == 2
    page.screenshot(path=str(tmp_path / "results.png"), full_page=True)

    report = page.context.new_page()
    report.goto(service.url + page.get_attribute("#report", "href"))
    report.wait_for_load_state("load")
    loaded = report.evaluate("[...document.images].map(i => i.naturalWidth > 0)")
    assert loaded and all(loaded)


def test_the_bot_from_start_to_album(service: ServiceProcesses, sample_photos: list[Path]) -> None:
    with FakeBotAPI() as telegram:
        env = {
            **service.env,
            "PORTRAITIST_TELEGRAM_TOKEN": TOKEN,
            "PORTRAITIST_TELEGRAM_API_URL": telegram.url,
            "PORTRAITIST_API_URL": service.url,
            "PORTRAITIST_BOT_JOB": json.dumps({**TINY_JOB, "k": 2}),
        }
        with open(service.logs / "bot.log", "wb") as log:  # the child keeps its own handle
            command = [sys.executable, "-c", "from portraitist.cli import main; main()", "bot"]
            bot = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            telegram.user_sends_command("/start")
            assert "Send me" in telegram.wait_sent("sendMessage")[0]["text"]

            for path in sample_photos[:5]:
                with Image.open(path) as image:
                    telegram.user_sends_photo(path.read_bytes(), *image.size)
            replies = telegram.wait_sent("sendMessage", 1 + 5 + 1, timeout=120)
            assert [r["text"].startswith("✓ Got it") for r in replies[1:6]] == [True] * 5
            keyboard = replies[6]
            rows = json.loads(keyboard["reply_markup"])["inline_keyboard"]
            buttons = {b["callback_data"]: b["text"] for row in rows for b in row}
            assert "style:photo" in buttons and list(buttons)[-1] == "start"
            shown = {
                "message_id": 999,
                "date": 0,
                "chat": {"id": 4242, "type": "private"},
                "text": keyboard["text"],
            }
            for data, text in buttons.items():  # leave only "photo" chosen (✅ marks the chosen ones)
                if data.startswith("style:") and text.startswith("✅") != (data == "style:photo"):
                    telegram.user_presses(data, shown)
            telegram.user_presses("start", shown)

            albums = telegram.wait_sent("sendMediaGroup", timeout=JOB_TIMEOUT)
            media = json.loads(albums[0]["media"])
            assert len(media) == 2
            for item in media:
                data = albums[0][item["media"].removeprefix("attach://")]
                assert Image.open(io.BytesIO(data)).size[0] > 0
            edits = [e["text"] for e in telegram.sent("editMessageText")]
            assert edits[-1] == "Done! Here they are:" and any(e.startswith("Working") for e in edits)
            assert bot.poll() is None
        finally:
            bot.terminate()
            bot.wait(timeout=20)
