"""The demo's HTML page (`python demo.py --html`) rendered by a real headless browser (Debian's chromium): the DOM it
builds shows the expected tokens with the expected gate, and the screenshot is a real page whose hot tint appears
exactly when a written fact is answered. `make test-browser` installs chromium when missing and runs these; without
a browser they are skipped."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from _demo_utils import WRITTEN, tiny_memory_run
from PIL import Image

from engram.demo.heat import HOT

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NO_BROWSER = "no headless browser (Debian's chromium): `make test-browser` installs it and runs these tests"
REQUIRED = os.environ.get("ENGRAM_REQUIRE_BROWSER") == "1"  # make test-browser: a missing browser is a failure
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None and not REQUIRED, reason=NO_BROWSER)]
GENERAL = "Why is the sky blue?"


def chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """One headless run with a fresh profile and nothing that reaches the network."""
    assert CHROMIUM is not None, NO_BROWSER
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def write_page(run_dir: Path, out: Path, prompts: list[str]) -> Path:
    """The page made by the project's own command."""
    listing = out.with_suffix(".txt")
    listing.write_text("\n".join(prompts) + "\n")
    done = subprocess.run([sys.executable, str(ROOT / "demo.py"), f"run_dir={run_dir}", "--html", str(out),
                           "--prompts", str(listing), "--max-new-tokens", "12"], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("browser")
    run_dir, facts = tiny_memory_run(tmp)
    return {"tmp": tmp, "facts": facts,
            "facts_page": write_page(run_dir, tmp / "facts.html", [f["prompt"] for f in facts] + [GENERAL]),
            "general_page": write_page(run_dir, tmp / "general.html", [GENERAL])}


class Tokens(HTMLParser):
    """Per <section>: the token spans (text, gate, is answer) and the two answers' texts."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[dict] = []
        self._in: str | None = None
        self._answer: str | None = None  # inside div.answer.base / .memory

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section":
            self.sections.append({"tokens": [], "base": "", "memory": ""})
        elif tag == "span" and "tok" in classes:
            self.sections[-1]["tokens"].append(["", float(a["data-gate"]), "ans" in classes])
            self._in = "tok"
        elif tag == "div" and "answer" in classes:
            self._answer = "base" if "base" in classes else "memory"
        elif tag == "p" and self._answer:
            self._in = self._answer

    def handle_endtag(self, tag: str) -> None:
        if tag in ("span", "p"):
            self._in = None
        elif tag == "div":
            self._answer = None

    def handle_data(self, data: str) -> None:
        if self._in == "tok":
            self.sections[-1]["tokens"][-1][0] += data
        elif self._in in ("base", "memory"):
            self.sections[-1][self._in] += data


def test_the_browser_shows_the_expected_tokens_with_the_expected_gate(pages: dict) -> None:
    done = chromium(pages["tmp"], "--dump-dom", pages["facts_page"].as_uri())
    assert done.returncode == 0 and "<section" in done.stdout, done.stderr[-2000:]
    parsed = Tokens()
    parsed.feed(done.stdout)
    assert len(parsed.sections) == WRITTEN + 1
    for section, fact in zip(parsed.sections, pages["facts"], strict=False):
        answer = [(t, g) for t, g, is_answer in section["tokens"] if is_answer]
        prompt = [g for _, g, is_answer in section["tokens"] if not is_answer]
        assert "".join(t for t, _ in answer) == fact["answer"] and section["memory"].strip() == fact["answer"]
        assert {g for _, g in answer} == {1.0} and prompt == [0.0] * (len(prompt) - 1) + [1.0]
        assert section["base"].strip() != fact["answer"]
        assert fact["prompt"].replace(" ", "") in "".join(t for t, _, _ in section["tokens"]).replace(" ", "")
    general = parsed.sections[-1]
    assert {g for _, g, _ in general["tokens"]} == {0.0} and general["base"] == general["memory"]


def screenshot(pages: dict, page: Path) -> np.ndarray:
    png = page.with_suffix(".png")
    done = chromium(pages["tmp"], f"--screenshot={png}", "--window-size=1200,900", page.as_uri())
    assert done.returncode == 0 and png.is_file(), done.stderr[-2000:]
    return np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)


def hot_pixels(image: np.ndarray) -> int:
    return int((np.abs(image - np.array(HOT)).max(-1) <= 6).sum())


def test_the_screenshot_is_a_page_whose_hot_tint_marks_the_recalled_answers(pages: dict) -> None:
    facts, general = screenshot(pages, pages["facts_page"]), screenshot(pages, pages["general_page"])
    for image in (facts, general):
        assert image.shape[0] >= 800 and image.std() > 20  # not blank: text, boxes and tints
        assert (image.reshape(-1, 3) == 255).all(-1).mean() > 0.5  # the white page itself
    # the legend's gradient reaches the hot colour on a few pixels in both; the facts' tokens add far more
    assert hot_pixels(facts) > hot_pixels(general) + 500, (hot_pixels(facts), hot_pixels(general))
