"""The TokenInspector where students use it: notebook 04 in JupyterLab, in a browser.

nbval checks the kernel side only. This test starts JupyterLab on 127.0.0.1 over a temporary copy
of notebook 04 (outputs and saved widget state cleared, so everything shown comes from the live
kernel; the committed notebook is never opened), opens it in headless Chromium through Selenium and
the system chromedriver, runs it with Shift+Enter down to the inspector cell, and works the widget
as a student does: it renders (controls, token view, flag count, chart, table), the λ slider
(keyboard on its handle) changes the flagged tokens and their count, the record picker and the
search box change the record, and the template toggle re-scores it.

Needs chromium and chromedriver (Debian: ``apt-get install chromium chromium-driver``) and
selenium (in the ``dev`` extra). Without them the test skips, unless ``CUTKIT_REQUIRE_BROWSER=1``
(set by ``.ci/run``), where it fails. Screenshots, the browser console and the JupyterLab log go to
``runs/browser-test/`` (or ``$CUTKIT_BROWSER_ARTEFACTS``); their paths are printed.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NOTEBOOK = REPO / "notebooks" / "04_token_inspection.ipynb"
ARTEFACTS = Path(os.environ.get("CUTKIT_BROWSER_ARTEFACTS") or REPO / "runs" / "browser-test")
REQUIRED = os.environ.get("CUTKIT_REQUIRE_BROWSER") == "1"
LOGS = ["jupyterlab.log", "chromedriver.log", "browser-console.log"]
INSTALL = (
    "apt-get install chromium chromium-driver (Debian/Ubuntu; or set CUTKIT_CHROMIUM and "
    "CUTKIT_CHROMEDRIVER to their paths) and pip install -e '.[dev]' (selenium)"
)

# Headless, and quiet on a closed network (no sync, updates, QUIC or background fetches).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
]

RUN_TO_INSPECTOR_S = 900  # imports, the first GGUF conversion (~30 s) and one scoring, on 2 cores
INTERACTION_S = 120  # one widget event: the kernel redraws, scoring a record (seconds on CPU)

# Everything the test reads from the inspector, in one pass over its DOM (by its ck-inspector-*
# classes, cutkit/viz/widgets.py). Only the first panel: notebook 04 shows one model.
SNAPSHOT_JS = """
const roots = document.querySelectorAll('.jp-Notebook .ck-inspector');
const errors = [...document.querySelectorAll(
  '.jp-Notebook .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"],'
  + '.jp-Notebook .jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]')]
  .map(e => e.innerText).filter(t => /Error|Traceback/.test(t));
if (roots.length !== 1) return {inspectors: roots.length, errors};
const root = roots[0];
const one = (cls) => root.querySelector('.' + cls);
const plain = (t) => t.replace(/\u00a0/g, ' ');  // ipywidgets pads option labels with nbsp
const text = (e) => (e ? plain(e.innerText).trim() : null);
const panel = one('ck-inspector-panel');
const plotted = (gd) => {  // what plotly drew: bars, opaque (flagged) bars, the log-lambda label
  const bars = gd && gd._fullData && gd._fullData[0];
  if (!bars) return null;
  const opacity = bars.marker && bars.marker.opacity;
  const annotations = (gd._fullLayout && gd._fullLayout.annotations) || [];
  return {
    y: Array.from(bars.y || []),
    flagged: Array.isArray(opacity) ? opacity.filter(o => o === 1).length : null,
    line: annotations.map(a => a.text).join(' | '),
  };
};
const select = root.querySelector('.ck-inspector-picker select');
const tokens = panel ? [...panel.querySelectorAll('.ck-tv-tokens .ck-tv-t')] : [];
return {
  inspectors: 1,
  errors,
  status: text(one('ck-inspector-status')),
  context: text(one('ck-inspector-context')),
  summary: text(panel && panel.querySelector('.ck-tv-head')),
  tokens: tokens.length,
  flagged: tokens.filter(t => t.classList.contains('ck-tv-f')).map(t => t.textContent),
  titles: tokens.map(t => t.title),
  table_rows: root.querySelectorAll('.ck-inspector-table tr').length,
  plot: plotted(root.querySelector('.ck-inspector-chart .js-plotly-plot')),
  picker: select && select.selectedIndex >= 0 ? plain(select.options[select.selectedIndex].text) : null,
  options: select ? [...select.options].map(o => plain(o.text)) : [],
  lambda: text(root.querySelector('.ck-inspector-lambda .widget-readout')),
  template: text(root.querySelector('.ck-inspector-template button.mod-active')),
};
"""

SUMMARY = re.compile(r"record (\S+) .*?(\d+) tokens · (\d+) flagged at λ = ([\d.]+)")
TOOLTIP_LOG_RATIO = re.compile(r"log ratio ([+-][\d.]+) nats")


# ------------------------------------------------------------------------------------- helpers


def find(variable: str, *names: str) -> str | None:
    """$variable (when it names a file) or the first of ``names`` on PATH."""
    if os.environ.get(variable):
        return os.environ[variable] if Path(os.environ[variable]).is_file() else None
    return next((path for name in names if (path := shutil.which(name))), None)


def executables() -> tuple[str, str]:
    """Paths of chromium and chromedriver (skip, or fail under CUTKIT_REQUIRE_BROWSER=1)."""
    chromium = find("CUTKIT_CHROMIUM", "chromium", "chromium-browser")
    driver = find("CUTKIT_CHROMEDRIVER", "chromedriver")
    missing = [
        name for name, path in [("chromium", chromium), ("chromedriver", driver)] if not path
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium")
    if missing:
        reason = f"the browser test needs {', '.join(missing)}: {INSTALL}"
        if REQUIRED:
            pytest.fail(f"CUTKIT_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return chromium, driver


def api(base: str, token: str, path: str, method: str = "GET"):
    request = urllib.request.Request(
        f"{base}{path}", method=method, headers={"Authorization": f"token {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def inspector_cell_index(cells: list[dict]) -> int:
    """Index of the code cell that shows the TokenInspector (constructs it and displays it)."""
    for i, cell in enumerate(cells):
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and "TokenInspector(" in source:
            return i
    raise AssertionError(f"{NOTEBOOK.name} has no cell that builds a TokenInspector")


def clean_copy(folder: Path) -> tuple[Path, int]:
    """The notebook without outputs or saved widget state in ``folder``; the inspector cell."""
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    notebook["metadata"].pop("widgets", None)
    copy = folder / NOTEBOOK.name
    copy.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    return copy, inspector_cell_index(notebook["cells"])


def expected_search_hit(word: str) -> str:
    """The id of the only held-out negative record that mentions ``word`` (as notebook 04)."""
    import cutkit

    records = cutkit.load_records(cutkit.bundled_data_path("starter/test.jsonl"))
    hits = [
        r.id
        for r in records
        if r.is_negative
        and any(
            word in (field or "").lower()
            for field in (r.id, r.instruction, r.input, r.judgment, r.response)
        )
    ]
    assert len(hits) == 1, f"pick another search word: {word!r} matches {hits}"
    return hits[0]


class Lab:
    """JupyterLab on 127.0.0.1 with a random token, rooted in a temporary folder."""

    def __init__(self, root: Path, home: Path, log: Path):
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        # No user configuration, settings, kernels or IPython profile leak in; the notebook's
        # kernel ("python3") is this interpreter (the environment under test), whatever else a
        # user has installed under that name.
        kernel = home / "data" / "kernels" / "python3"
        kernel.mkdir(parents=True)
        (kernel / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Python 3 (cutkit, browser test)",
                    "language": "python",
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if k != "JUPYTER_PATH"}
        env.update(
            JUPYTER_CONFIG_DIR=str(home / "config"),
            JUPYTER_DATA_DIR=str(home / "data"),
            JUPYTER_RUNTIME_DIR=str(home / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"),
            IPYTHONDIR=str(home / "ipython"),
            OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
        )
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--ServerApp.root_dir={root}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.open_browser=False",
            "--LabApp.news_url=None",  # no announcements feed
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",  # no PyPI queries
            "--ServerApp.terminals_enabled=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")  # CI containers run as root
        # No "get notified about Jupyter news?" prompt over the screenshots.
        labconfig = home / "config" / "labconfig"
        labconfig.mkdir(parents=True)
        (labconfig / "page_config.json").write_text(
            json.dumps(
                {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
            )
        )
        self.log = log.open("w")
        self.process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: kernels are stopped with it
        )
        deadline = time.monotonic() + 180
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"JupyterLab exited with {self.process.returncode}; see {log}")
            try:
                api(self.base, self.token, "/api/status")
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"JupyterLab did not answer in 180 s; see {log}") from None
                time.sleep(0.5)

    def kernels(self) -> list[dict]:
        return api(self.base, self.token, "/api/kernels")

    def stop(self) -> None:
        try:
            api(self.base, self.token, "/api/shutdown", method="POST")  # stops its kernels too
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


def start_chromium(chromium: str, driver_path: str, profile: Path, log: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in [*CHROMIUM_ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager (which would go online) is not used.
    service = Service(executable_path=driver_path, log_output=str(log))
    return webdriver.Chrome(options=options, service=service)


class Page:
    """The notebook page: snapshots of the inspector, waits with readable failures, screenshots."""

    def __init__(self, driver, artefacts: Path):
        self.driver, self.artefacts = driver, artefacts
        self.last: dict | None = None

    def snapshot(self) -> dict:
        self.last = self.driver.execute_script(SNAPSHOT_JS)
        return self.last

    def wait(self, what: str, timeout: float, **conditions) -> dict:
        """Poll the inspector until each of ``conditions`` (name: predicate of a snapshot) holds
        and its parts agree (:func:`disagreements`); fail fast on a traceback in the notebook,
        and on a timeout say which conditions did not hold."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.snapshot()
            if state.get("errors"):
                raise AssertionError(f"{what}: the notebook shows an error:\n{state['errors'][0]}")
            if state.get("inspectors") != 1:
                problems = [f"{state.get('inspectors')} inspectors on the page, not 1"]
            else:
                problems = []
                for name, predicate in conditions.items():
                    try:
                        holds = predicate(state)
                    except (TypeError, AttributeError, KeyError, ValueError, IndexError):
                        holds = False
                    if not holds:
                        problems.append(f"not {name.replace('_', ' ')}")
                if "scoring" in (state.get("status") or ""):
                    problems.append("still scoring")
                problems += disagreements(state)
                if not problems:
                    return state
            if time.monotonic() > deadline:
                shown = {k: v for k, v in state.items() if k not in ("titles", "context")}
                shown["options"] = f"{len(state.get('options', []))} records"
                raise AssertionError(
                    f"{what}: not seen within {timeout:.0f} s: {'; '.join(problems)}.\n"
                    f"The inspector shows: {shown}"
                )
            time.sleep(0.5)

    def wait_for_cell(self, index: int, timeout: float) -> str:
        """Wait until cell ``index`` has run (its prompt shows an execution count); fail fast on a
        traceback in the notebook. Returns the prompt."""
        deadline = time.monotonic() + timeout
        while True:
            prompt = self.driver.execute_script(
                "const c = document.querySelectorAll('.jp-Notebook .jp-Cell')[arguments[0]];"
                "const p = c && c.querySelector('.jp-InputPrompt');"
                "return p ? p.innerText.trim() : null;",
                index,
            )
            if prompt and re.fullmatch(r"\[\d+\]:", prompt):
                return prompt
            errors = self.snapshot().get("errors")
            if errors:
                raise AssertionError(f"running the notebook: it shows an error:\n{errors[0]}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"cell {index} (the inspector) did not finish within {timeout:.0f} s "
                    f"(its prompt: {prompt!r})"
                )
            time.sleep(1)

    def element(self, css: str):
        return self.driver.find_element("css selector", f".jp-Notebook .ck-inspector {css}")

    def shot(self, name: str) -> Path:
        self.driver.execute_script(
            "const e = document.querySelector('.jp-Notebook .ck-inspector');"
            "if (e) e.scrollIntoView({block: 'start'});"
        )
        path = self.artefacts / f"{name}.png"
        self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path


def summary(state: dict) -> tuple[str, int, int, float]:
    """(record id, tokens, flagged, lambda) from the token panel's summary line."""
    match = SUMMARY.search(state.get("summary") or "")
    assert match, f"no summary line in the token view: {state.get('summary')!r}"
    return match[1], int(match[2]), int(match[3]), float(match[4])


def disagreements(state: dict) -> list[str]:
    """Where the parts of the inspector contradict each other: the summary's token and flag
    counts, the outlined tokens, the chart's bars (their log ratios, opaque = flagged, the log λ
    label) and the flagged-token table must all show the same scores at the same λ."""
    try:
        _, n_tokens, n_flagged, lam = summary(state)
    except AssertionError as error:
        return [str(error)]
    problems = []
    if n_tokens != state["tokens"]:
        problems.append(f"summary says {n_tokens} tokens, the view shows {state['tokens']}")
    if n_flagged != len(state["flagged"]):
        problems.append(f"summary says {n_flagged} flagged, {len(state['flagged'])} are outlined")
    if state["table_rows"] != (n_flagged + 1 if n_flagged else 0):
        problems.append(f"the flagged table has {state['table_rows']} rows for {n_flagged} flags")
    plot = state["plot"]
    if not plot:
        return [*problems, "no plotly chart"]
    shown = [float(m[1]) for t in state["titles"] for m in [TOOLTIP_LOG_RATIO.search(t)] if m]
    if len(plot["y"]) != len(shown) or any(
        abs(a - b) > 1e-3 for a, b in zip(plot["y"], shown, strict=True)
    ):
        problems.append(f"the chart's bars {plot['y']} are not the tokens' log ratios {shown}")
    if plot["flagged"] != n_flagged:
        problems.append(f"the chart has {plot['flagged']} opaque bars for {n_flagged} flags")
    if f"log λ = {math.log(lam):.3f}" not in plot["line"]:
        problems.append(f"the chart's threshold line says {plot['line']!r}, not λ = {lam:g}")
    return problems


# ---------------------------------------------------------------------------------------- test


def test_token_inspector_works_in_jupyterlab(tmp_path):
    chromium, driver_path = executables()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for name in ["*.png", *LOGS]:  # this test's artefacts of an earlier run
        for old in ARTEFACTS.glob(name):
            old.unlink()
    print(f"browser test artefacts: {ARTEFACTS}")
    root = tmp_path / "lab"
    root.mkdir()
    notebook, inspector_cell = clean_copy(root)
    committed = NOTEBOOK.read_bytes()
    search_word, search_hit = "banana", expected_search_hit("banana")

    lab = Lab(root, tmp_path / "jupyter", ARTEFACTS / "jupyterlab.log")
    driver = None
    try:
        driver = start_chromium(
            chromium, driver_path, tmp_path / "chromium-profile", ARTEFACTS / "chromedriver.log"
        )
        page = Page(driver, ARTEFACTS)
        try:
            driver.get(f"{lab.base}/lab/tree/{notebook.name}?token={lab.token}")
            # ---- open the notebook and wait for its kernel --------------------------------
            deadline = time.monotonic() + 180
            while len(driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")) <= (
                inspector_cell
            ) or not any(k["execution_state"] == "idle" for k in lab.kernels()):
                assert time.monotonic() < deadline, "the notebook or its kernel did not come up"
                time.sleep(0.5)
            cells = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")
            page.shot("00-opened")

            # ---- run it cell by cell (Shift+Enter) through the inspector cell --------------
            cells[0].find_element(By.CSS_SELECTOR, ".jp-InputPrompt").click()
            for _ in range(inspector_cell + 1):
                ActionChains(driver).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(
                    Keys.SHIFT
                ).perform()
                time.sleep(0.3)
            page.wait_for_cell(inspector_cell, RUN_TO_INSPECTOR_S)
            first = page.wait(
                "the inspector cell ran: the inspector renders",
                INTERACTION_S,
                showing_tokens=lambda s: s["tokens"] > 0,
                showing_record_1=lambda s: s["status"].startswith("record 1 of "),
            )
            page.shot("01-rendered")
            record, _, n_flagged, lam = summary(first)
            assert re.match(r"record 1 of \d+ · template chat · λ = 1\.1 ", first["status"])
            assert lam == 1.1 and float(first["lambda"]) == 1.1, first["lambda"]
            assert first["template"] == "chat", first["template"]
            assert first["picker"].startswith(f"{record} · "), (first["picker"], record)
            assert n_flagged >= 1, "record 1 has flagged tokens at λ = 1.1"
            assert len(first["options"]) > 1

            # ---- the λ slider: End on its handle moves it to 10 ----------------------------
            handle = page.element(".ck-inspector-lambda .noUi-handle")
            handle.click()
            handle.send_keys(Keys.END)
            moved = page.wait(
                "moving the λ slider to 10 redraws the token view",
                INTERACTION_S,
                slider_at_10=lambda s: float(s["lambda"]) == 10,
                status_at_10=lambda s: " λ = 10 " in s["status"],
                token_view_at_10=lambda s: summary(s)[3] == 10,
            )
            page.shot("02-lambda-10")
            assert summary(moved)[0] == record
            n_flagged_10 = summary(moved)[2]
            assert n_flagged_10 < n_flagged, (
                f"a higher λ flags fewer tokens: {n_flagged} at 1.1, {n_flagged_10} at 10"
            )
            assert set(moved["flagged"]) < set(first["flagged"]), (first["flagged"], moved)

            # ---- the record picker ----------------------------------------------------------
            second_id, second_instruction = first["options"][1].split(" · ", 1)
            Select(page.element(".ck-inspector-picker select")).select_by_index(1)
            picked = page.wait(
                f"picking {second_id} in the record picker shows it",
                INTERACTION_S,
                status_at_record_2=lambda s: s["status"].startswith("record 2 of "),
                token_view_of_it=lambda s: summary(s)[0] == second_id,
            )
            page.shot("03-picked")
            assert second_instruction.rstrip("…") in " ".join(picked["context"].split())
            assert summary(picked)[3] == 10, "the picker keeps λ"
            assert picked["titles"] != moved["titles"]

            # ---- the search box -------------------------------------------------------------
            search = page.element(".ck-inspector-search input")
            search.click()
            search.send_keys(search_word)
            found = page.wait(
                f"searching {search_word!r} narrows the picker to {search_hit}",
                INTERACTION_S,
                one_option_left=lambda s: len(s["options"]) == 1,
                picker_at_it=lambda s: s["picker"].startswith(f"{search_hit} · "),
                token_view_of_it=lambda s: summary(s)[0] == search_hit,
            )
            page.shot("04-searched")
            assert search_word in found["context"].lower()

            # ---- the template toggle re-scores --------------------------------------------
            toggle = [
                b
                for b in driver.find_elements(
                    By.CSS_SELECTOR, ".jp-Notebook .ck-inspector-template button"
                )
                if b.text.strip() == "alpaca"
            ]
            assert toggle, "no 'alpaca' button in the template toggle"
            toggle[0].click()
            alpaca = page.wait(
                "switching the template to alpaca re-scores the record",
                INTERACTION_S,
                alpaca_button_active=lambda s: s["template"] == "alpaca",
                status_saying_alpaca=lambda s: " template alpaca " in s["status"],
                token_view_of_the_same_record=lambda s: summary(s)[0] == search_hit,
                token_probabilities_changed=lambda s: s["titles"] != found["titles"],
            )
            page.shot("05-alpaca")
            assert summary(alpaca)[3] == 10
            assert len(lab.kernels()) == 1
        except BaseException:
            with contextlib.suppress(Exception):  # the browser may be what failed
                page.shot("failure")
            raise
        finally:
            with contextlib.suppress(Exception):
                logs = driver.get_log("browser")
                console = ARTEFACTS / "browser-console.log"
                console.write_text(
                    "".join(f"{e['level']} {e['message']}\n" for e in logs), encoding="utf-8"
                )
                print(f"browser console: {console}")
    finally:
        if driver is not None:
            driver.quit()
        lab.stop()
        print(f"JupyterLab log: {ARTEFACTS / 'jupyterlab.log'}")
    assert NOTEBOOK.read_bytes() == committed, "the committed notebook changed"
