"""The region response explorer in a real browser: JupyterLab (headless, loopback, no token) driven
by Chromium through Python Playwright.

The test copies ``notebooks/response_maps.ipynb`` (with ``smoke = True``) into a temporary root
folder, starts ``jupyter lab`` there, opens the notebook, runs every cell -- on the demo model,
which it trains first, as a fresh clone does (no earlier study) -- then moves the frame slider
(keyboard on the ``[role=slider]`` handle) and changes the region menu, and checks that the
overlay images changed (their bytes, fetched from the page) and that the readouts show the new
values. A second test opens the look-first notebook ``notebooks/results.ipynb`` beside the
committed results and finds the claims table rendered. Screenshots go to ``test-artifacts/browser/``.

It uses Debian's ``chromium`` (``/usr/bin/chromium``, or ``$FGRA_CHROMIUM``); no browser download
is needed. Without it, or when it cannot start, the test is skipped with the reason.
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "response_maps.ipynb"
LOOK_FIRST = REPO / "notebooks" / "results.ipynb"
ARTIFACTS = REPO / "test-artifacts" / "browser"
CHROMIUM = os.environ.get("FGRA_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
BUDGET_S = 300          # the whole test, start to end (the demo model trains in it: under a minute alone)

# the bytes behind an <img> (ipywidgets images are blob: URLs), as a data: URL
IMAGE_BYTES_JS = """async (el) => {
  const blob = await (await fetch(el.src)).blob();
  return await new Promise(done => { const r = new FileReader(); r.onload = () => done(r.result); r.readAsDataURL(blob); });
}"""
KERNEL_IDLE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Deadline:
    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def ms(self, cap_s: float) -> float:
        """Milliseconds left for a step: at most ``cap_s``, and never beyond the test's budget."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"the browser test ran past its {BUDGET_S} s budget")
        return 1000.0 * min(cap_s, left)


@pytest.fixture
def chromium():
    """A launched headless Chromium, or a skip naming why there is none."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Debian chromium not found at {CHROMIUM} (install it with `apt-get install chromium`; "
                    ".ci/run does so when apt is usable)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"python playwright is not installed ({exc}); it comes with the 'test' extra")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000)
    except Exception as exc:  # noqa: BLE001 - any launch failure means: no usable browser here
        pw.stop()
        pytest.skip(f"chromium at {CHROMIUM} cannot start: {str(exc).strip().splitlines()[0]}")
    yield browser
    browser.close()
    pw.stop()


@pytest.fixture
def lab(tmp_path):
    """``jupyter lab`` on 127.0.0.1 (free port, no token) serving a folder holding a smoke copy of
    the notebook; yields ``(base url, log file)``; stopped (with its kernels) afterwards."""
    root = tmp_path / "lab"
    root.mkdir()
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            src = "".join(cell["source"])
            assert "smoke: bool = False" in src, "the parameters cell no longer declares `smoke: bool = False`"
            cell["source"] = src.replace("smoke: bool = False", "smoke: bool = True")
    (root / NOTEBOOK.name).write_text(json.dumps(nb))
    shutil.copy(LOOK_FIRST, root / LOOK_FIRST.name)
    for sub in ("results/quick", "figures/quick"):   # the committed results, as in a fresh clone
        shutil.copytree(REPO / sub, root / sub)

    state = tmp_path / "jupyter"      # private config / runtime / settings: nothing of the user's is read or written
    env = dict(os.environ)
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                     ("JUPYTERLAB_SETTINGS_DIR", "settings"), ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"),
                     ("IPYTHONDIR", "ipython")):
        env[var] = str(state / sub)
    notify = state / "settings" / "@jupyterlab" / "apputils-extension"
    notify.mkdir(parents=True)
    (notify / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env.setdefault("MPLBACKEND", "Agg")

    port = _free_port()
    log_path = tmp_path / "jupyter-lab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
           "--no-browser", "--ServerApp.open_browser=False", "--allow-root", "--IdentityProvider.token=",
           "--ServerApp.password=", f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(f"{url}/api/status", timeout=2).read()
                break
            except OSError:
                if time.monotonic() - t0 > 45:
                    raise AssertionError(f"jupyter lab did not answer on {url} within 45 s:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.3)
        yield url, log_path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)          # the server shuts its kernels down on SIGTERM
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


@pytest.mark.browser
def test_explorer_in_jupyterlab(chromium, lab):
    url, log_path = lab
    deadline = Deadline(BUDGET_S)
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    page = chromium.new_page(viewport={"width": 1500, "height": 1100})
    console = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    timings = {}
    t0 = time.monotonic()

    def images_loaded():
        """Wait until every image of the explorer has decoded its latest bytes (for screenshots)."""
        page.wait_for_function(
            "() => Array.from(document.querySelectorAll('.fgra-explorer img')).every(i => i.complete && i.naturalWidth > 0)",
            timeout=deadline.ms(10))
        page.wait_for_timeout(200)

    def shot(name):
        if page.locator(".fgra-explorer").count():
            images_loaded()
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"))

    def readout(name):
        return page.inner_text(f".fgra-explorer .fgra-readout .fgra-ro-{name}")

    def image(css):
        return base64.b64decode(page.eval_on_selector(f".fgra-explorer img.{css}", IMAGE_BYTES_JS).split(",", 1)[1])

    def sources():
        return page.evaluate("() => Object.fromEntries(Array.from(document.querySelectorAll('.fgra-explorer img'))"
                             ".map(i => [Array.from(i.classList).find(c => c.startsWith('fgra-')), i.src]))")

    def wait_new_images(before, names, cap_s=20):
        """Each widget model updates on its own in the page (the readout may land before an image):
        wait until every image of ``names`` shows a new blob."""
        page.wait_for_function(
            "([before, names]) => names.every(n => { const i = document.querySelector('.fgra-explorer img.' + n);"
            " return !!i && i.src !== before[n] && i.complete; })",
            arg=[before, names], timeout=deadline.ms(cap_s))

    def wait_readout(name, value, cap_s=30):
        page.wait_for_function(
            "([n, v]) => { const e = document.querySelector('.fgra-explorer .fgra-readout .fgra-ro-' + n); return !!e && e.textContent === v; }",
            arg=[name, value], timeout=deadline.ms(cap_s))

    try:
        # open the notebook; wait for its kernel
        page.goto(f"{url}/lab/tree/{NOTEBOOK.name}", timeout=deadline.ms(60))
        page.wait_for_function(KERNEL_IDLE_JS, timeout=deadline.ms(60))
        timings["lab_and_kernel_ready"] = time.monotonic() - t0
        shot("01-opened")

        # run every cell; the explorer appears at the end (or an error output does)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        error_sel = "[data-mime-type='application/vnd.jupyter.error']"
        page.wait_for_selector(f".fgra-explorer .fgra-readout .fgra-ro-frame, {error_sel}", timeout=deadline.ms(240))
        if page.locator(error_sel).count():
            shot("failure-cell-error")
            pytest.fail("a notebook cell failed in JupyterLab:\n" + page.locator(error_sel).first.inner_text()[-3000:])
        timings["notebook_executed"] = time.monotonic() - t0
        assert page.locator(".jp-RenderedImage img").count() >= 2        # the static Fig.-5 figures
        assert "demo (variant 8" in page.inner_text(".jp-Notebook")       # the demo model, trained here
        assert page.inner_text(".fgra-explorer .fgra-status") == ""
        page.locator(".fgra-explorer").scroll_into_view_if_needed()
        shot("02-executed")
        assert readout("frame") == "0" and readout("region") == "0"
        seq0, backbone0 = readout("sequence-frame"), readout("backbone")
        overlay0, strip0, reference0 = image("fgra-overlay"), image("fgra-strip"), image("fgra-reference")
        src0 = sources()
        assert set(src0) == {"fgra-reference", "fgra-overlay", "fgra-strip", "fgra-temporal", "fgra-spatial"}
        assert overlay0.startswith(b"\x89PNG") and reference0.startswith(b"\x89PNG")

        # the frame slider: focus its handle, one step right
        handle = page.locator(".fgra-explorer .fgra-frame-slider [role=slider]")
        handle.focus()
        page.keyboard.press("ArrowRight")
        wait_readout("frame", "1")
        wait_new_images(src0, ["fgra-overlay", "fgra-strip", "fgra-temporal"])
        assert handle.get_attribute("aria-valuenow") in ("1", "1.0", "1.00")
        assert readout("sequence-frame") != seq0
        overlay1, strip1 = image("fgra-overlay"), image("fgra-strip")
        assert overlay1 != overlay0, "the frame overlay did not change when the frame slider moved"
        assert strip1 != strip0, "the highlighted frame of the strip did not change"
        assert image("fgra-reference") == reference0                      # same region: same reference boxes
        assert readout("backbone") == backbone0                           # no backbone pass for a frame change
        timings["slider_moved"] = time.monotonic() - t0
        shot("03-frame-moved")

        # the region menu
        src1 = sources()
        page.select_option(".fgra-explorer .fgra-region select", label="region 2")
        wait_readout("region", "2")
        wait_new_images(src1, ["fgra-reference", "fgra-overlay", "fgra-strip", "fgra-temporal", "fgra-spatial"])
        assert readout("frame") == "1"
        overlay2, reference2 = image("fgra-overlay"), image("fgra-reference")
        assert overlay2 != overlay1, "the overlay did not change with the region"
        assert reference2 != reference0, "the reference frame's highlighted box did not move to the new region"
        assert readout("backbone") == backbone0                           # nor for a region change
        timings["region_changed"] = time.monotonic() - t0
        shot("04-region-changed")
        page.locator(".fgra-explorer").screenshot(path=str(ARTIFACTS / "explorer.png"))
        (ARTIFACTS / "timings.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}, indent=1))
        print("browser test timings (s):", {k: round(v, 1) for k, v in timings.items()})
    except BaseException:
        try:
            shot("failure")
        finally:
            (ARTIFACTS / "console.log").write_text("\n".join(console))
            shutil.copy(log_path, ARTIFACTS / "jupyter-lab.log")
        raise
    finally:
        page.close()


@pytest.mark.browser
def test_look_first_notebook_in_jupyterlab(chromium, lab):
    """The look-first notebook shows the committed claims table without any run."""
    url, log_path = lab
    deadline = Deadline(120)
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{url}/lab/tree/{LOOK_FIRST.name}", timeout=deadline.ms(60))
        page.wait_for_function(KERNEL_IDLE_JS, timeout=deadline.ms(60))
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        error_sel = "[data-mime-type='application/vnd.jupyter.error']"
        table = ".jp-RenderedMarkdown table:has-text('T2.c')"
        page.wait_for_selector(f"{table}, {error_sel}", timeout=deadline.ms(60))
        if page.locator(error_sel).count():
            pytest.fail("a cell of the look-first notebook failed:\n" + page.locator(error_sel).first.inner_text()[-3000:])
        assert "the region alignment mechanism helps" in page.locator(table).first.inner_text()
        page.wait_for_function("() => document.querySelectorAll('.jp-RenderedImage img').length >= 5",
                               timeout=deadline.ms(30))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "results-notebook.png"), full_page=False)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log_path, ARTIFACTS / "jupyter-lab-results.log")
        raise
    finally:
        page.close()
