"""The rendered report as a person opens it: Chromium (Debian's ``chromium``, which
scripts/test.sh installs) loads index.html headless, without console errors, and the
page it builds holds the stars table first, the ranking picture, and every plot as a
decodable image."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import A, MANY, report
from ipcbench_report import layout as headings

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium; "
    "scripts/test.sh installs it)")
TIMEOUT = 120


def chromium(*args: str) -> subprocess.CompletedProcess:
    """Headless Chromium with a fresh profile that is removed afterwards; the whole
    process group is killed when it outlives ``TIMEOUT``."""
    with tempfile.TemporaryDirectory(prefix="ipcbench-chromium-") as profile:
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", *args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            pytest.fail(f"chromium did not finish within {TIMEOUT} s: {' '.join(cmd)}")
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


# (input, images in its page): a run of the matrix, and the hand-made run of only
# many-clients and fan-out cells (two more plots: clients_vs_n.png, fanout_vs_n.png).
PAGES = {"matrix": (A, 4), "many-clients": (MANY, 6)}
IMAGES: dict[Path, int] = {}            # rendered page -> images it must show


@pytest.fixture(scope="module", params=sorted(PAGES))
def page(tmp_path_factory, request) -> Path:
    out = tmp_path_factory.mktemp("browser") / "report"
    res = report("render", PAGES[request.param][0], "--out", out)
    assert res.returncode == 0, res.stderr
    IMAGES[out / "index.html"] = PAGES[request.param][1]
    return out / "index.html"


def test_the_page_loads_without_console_errors(page):
    res = chromium("--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri())
    assert res.returncode == 0, res.stderr
    console = [ln for ln in res.stderr.splitlines() if "CONSOLE" in ln]
    assert not console, "\n".join(console)
    dom = res.stdout
    # The answer first: the stars table is the first section, the ranking picture the
    # second, the run's context the last.
    titles = re.findall(r"<h2>([^<]*)</h2>", dom)
    assert titles[:2] == [headings.STARS, headings.RANKING]
    assert titles[-1] == headings.MEASURED
    first = dom.split("<section", 2)[1]
    assert "<table" in first and "local performance" in first and "classic" in first
    second = dom.split("<section", 3)[2]
    assert re.search(r'<img alt="Transports ranked[^"]*" src="data:image/png;base64,', second)


def test_every_image_is_decoded_by_the_browser(page, tmp_path):
    # Each img reports its natural width once decoded; a broken one reports 0.
    probe = tmp_path / "probe.html"
    html = page.read_text()
    script = ("<script>window.onload=()=>{const w=[...document.images]"
              ".map(i=>i.complete?i.naturalWidth:0);"
              "document.body.setAttribute('data-widths',w.join(','));};</script>")
    probe.write_text(html.replace("</body>", script + "</body>"))
    res = chromium("--dump-dom", "--virtual-time-budget=5000", probe.as_uri())
    assert res.returncode == 0, res.stderr
    m = re.search(r'data-widths="([^"]*)"', res.stdout)
    assert m, "the page's load handler did not run"
    widths = [int(w) for w in m.group(1).split(",")]
    assert len(widths) == IMAGES[page] and all(w > 0 for w in widths), widths


def test_a_screenshot_is_taken(page, tmp_path):
    shot = tmp_path / "page.png"
    res = chromium(f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    assert res.returncode == 0, res.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
