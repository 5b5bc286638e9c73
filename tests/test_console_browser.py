"""The field console (issue 17) in a real browser: Debian's Chromium, driven by Selenium through
Debian's chromedriver (tests/peers/browser.py), against real processes: `dcmeter simulate`
(a site of about 1 MW, so that the meters' whole-Wh registers move within seconds), `dcmeter
agent run` polling it every second, and `dcmeter collector serve`, which serves the console.

What is checked follows the console's contract (docs/console.md): sign in with a token, start
an infrastructure window from the windows list, see its PUE and energy appear and change
without a reload, see the agent's row go `stale` when the agent is stopped and recover when it
is started again, stop the window, download its PDF report; a reader finds no start or stop
form and the server refuses the reader's POST even with a valid CSRF token; a POST without the
CSRF token (or with a wrong one) is refused and changes nothing. The page body never scrolls
sideways at 390 px. With DCMETER_SCREENSHOTS=DIR (`DIR` relative to the repository, `docs`
for the committed ones) the live page at 1280 and 390 px and the windows list are saved as
DIR/console-live-desktop.png, DIR/console-live-phone.png and DIR/console-windows.png.

The first tests check the harness itself on pages that need no console (a `data:` page, the
collector's offline `/docs`), so that a broken browser set-up is told apart from a broken
console.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, free_port
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException
from selenium.webdriver.common.by import By

from dcmeter.agent import keys, pubkey
from tests.peers.browser import (
    DESKTOP,
    PHONE,
    chrome,
    data_page,
    downloaded,
    screenshot,
    scrolls_horizontally,
    wait_until,
)
from tests.peers.processes import DCMETER, daemon, stop, wait_for

AGENT_ID = "console-agent"
CLI_TIMEOUT_S = 90.0
LIVE_S = 60.0  # the live fragment is fetched every 5 s: a dozen chances on a busy machine
STALE_S = 90.0  # 3 polls of 1 s make the agent stale, then the next fetch shows it
NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")


@dataclass
class Site:
    """The running peers: collector URL, tokens, the agent's command and the logs."""

    url: str
    engineer: str
    reader: str
    work: Path
    env: dict[str, str]
    agent_cfg: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    agent: subprocess.Popen[bytes] | None = None  # the agent process started last
    logs: list[Path] = field(default_factory=list)

    def start_agent(self) -> subprocess.Popen[bytes]:
        """Start `dcmeter agent run` (again), with a log of its own."""
        log = self.work / f"agent-{len(self.logs)}.log"
        self.logs.append(log)
        proc = daemon(["agent", "run", "-c", str(self.agent_cfg)], log, self.env)
        self.agent = proc
        self.procs.append(proc)
        return proc

    def api(self, token: str) -> httpx.Client:
        """The collector's bearer-token API (to set up and check, never to drive the console)."""
        return httpx.Client(base_url=self.url, timeout=30.0,
                            headers={"Authorization": f"Bearer {token}"})

    def tails(self) -> str:
        """The logs' last lines, for a failure message."""
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-2000:]}"
                         for p in self.logs if p.exists())


def _token(role: str, config: Path, env: dict[str, str]) -> str:
    r = subprocess.run([*DCMETER, "collector", "token", "create", "--role", role,
                        "-c", str(config)], capture_output=True, text=True, env=env,
                       timeout=CLI_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """`dcmeter simulate`, `dcmeter collector serve` and `dcmeter agent run` running, an
    engineer's and a reader's token made with the real CLI."""
    work = tmp_path_factory.mktemp("console")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DCMETER_TOKEN", "DCMETER_COLLECTOR")}
    env.update(COLUMNS="120", PYTHONPATH=str(ROOT))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    agent_cfg, site_file, sim_cfg = (work / n for n in ("agent.toml", "site.toml", "sim.toml"))
    # About 1 MW of IT (other_it_kw) swinging with a 20 s period: the energies move by whole
    # kWh-fractions each second and the PUE changes visibly between two live fetches.
    sim_cfg.write_text(
        "[simulate]\n"
        f'agent_id = "{AGENT_ID}"\ninterval_s = 1\ncollector_url = "{url}"\n\n'
        "[site]\nservers = 2\nswitches = 1\nports_per_switch = 2\nstorage = 1\n"
        "other_it_kw = 800.0\nperiod_s = 20.0\n")
    s = Site(url, "", "", work, env, agent_cfg)
    s.logs += [work / "simulate.log", work / "collector.log"]
    try:
        s.procs.append(daemon(["simulate", "-c", str(sim_cfg), "--agent-config",
                               str(agent_cfg), "--site-file", str(site_file)], s.logs[0], env))
        wait_for("simulate", lambda: "devices on" in s.logs[0].read_text(), s.procs, s.logs)
        key = keys.load_or_create(work / "agent.toml.state")  # the written config's state dir
        (work / "agents").mkdir()
        (work / "agents" / f"{AGENT_ID}.pub").write_text(
            pubkey.public_text(key.public_key()) + "\n")
        collector_cfg = work / "collector.toml"
        collector_cfg.write_text(
            f'[collector]\nhost = "127.0.0.1"\nport = {port}\nstore = "collector.sqlite"\n'
            'site = "site.toml"\nkeys_dir = "agents"\n')
        s.procs.append(daemon(["collector", "serve", "-c", str(collector_cfg)], s.logs[1], env))
        wait_for("collector", lambda: httpx.get(f"{url}/api/v1/health").is_success,
                 s.procs, s.logs)
        s.engineer = _token("engineer", collector_cfg, env)
        s.reader = _token("reader", collector_cfg, env)
        s.start_agent()
        wait_for("first samples",
                 lambda: httpx.get(f"{url}/api/v1/health").json()["samples"] > 0,
                 s.procs, s.logs)
        time.sleep(1.5)  # a sample before the first window opens, to interpolate its start
        yield s
    finally:
        for p in reversed(s.procs):
            stop(p)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def desktop(downloads: Path) -> Iterator[webdriver.Chrome]:
    driver = chrome(DESKTOP, downloads)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def phone(downloads: Path) -> Iterator[webdriver.Chrome]:
    driver = chrome(PHONE, downloads)
    try:
        yield driver
    finally:
        driver.quit()


def shots() -> Path | None:
    """Where screenshots go (DCMETER_SCREENSHOTS, relative to the repository), or None."""
    where = os.environ.get("DCMETER_SCREENSHOTS")
    return None if not where else (ROOT / where if not Path(where).is_absolute() else Path(where))


# -- the harness on pages that exist without the console ---------------------------------------

def test_harness_sees_sideways_scroll_and_saves_a_download(phone: webdriver.Chrome,
                                                          downloads: Path) -> None:
    """The 390 px check can fail (a 2000 px wide block scrolls, a narrow page does not), and
    a PDF link lands in the download folder, complete, instead of Chromium's viewer."""
    meta = "<meta name='viewport' content='width=device-width, initial-scale=1'>"
    phone.get(data_page(f"<html><head>{meta}</head><body><div style='width:2000px'>wide"
                        "</div></body></html>"))
    assert scrolls_horizontally(phone)
    phone.get(data_page(f"<html><head>{meta}</head><body><p>narrow</p></body></html>"))
    assert phone.execute_script("return window.innerWidth") == PHONE[0]
    assert not scrolls_horizontally(phone)
    pdf = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()
    phone.get(data_page(f"<a id='pdf' href='data:application/pdf;base64,{pdf}'"
                        " download='r.pdf'>PDF</a>"))
    phone.find_element(By.ID, "pdf").click()
    assert downloaded(downloads, ".pdf", 30).read_bytes() == b"%PDF-1.4\n%%EOF\n"


def test_harness_renders_the_offline_api_docs(site: Site, desktop: webdriver.Chrome) -> None:
    """The collector's `/docs` (Swagger UI served by the collector, no CDN) renders its
    operations in the browser: the harness reaches the collector and runs its scripts."""
    desktop.get(f"{site.url}/docs")
    ops = wait_until("Swagger UI's operations", lambda: desktop.find_elements(
        By.CSS_SELECTOR, ".swagger-ui .opblock"), 60, site.tails)
    paths = {o.find_element(By.CSS_SELECTOR, ".opblock-summary-path").text for o in ops}
    assert "/api/v1/windows" in {p.replace("\u200b", "") for p in paths}, paths


def test_harness_site_moves_within_the_live_deadlines(site: Site) -> None:
    """Through the API (not the console): an open window's PUE and total energy exist and
    change within LIVE_S, so the live-page test's waits are long enough for this site."""
    wid = _open_window(site)
    try:
        with site.api(site.reader) as api:
            def figures() -> tuple[float, float] | None:
                got = api.get(f"/api/v1/windows/{wid}").json()
                pue, total = got["pue"], got["energy_kwh"]["total"]
                return (pue, total) if pue is not None and total else None
            pue, total = wait_until("the API's PUE", figures, LIVE_S, site.tails)
            assert 1.0 < pue < 3.0, pue
            wait_until("the API's figures change",
                       lambda: (f := figures()) is not None and f[0] != pue and f[1] > total,
                       LIVE_S, site.tails)
    finally:
        with site.api(site.engineer) as api:
            api.post(f"/api/v1/windows/{wid}/stop")


# -- the console, by its contract ----------------------------------------------------------------

def sign_in(driver: webdriver.Chrome, site: Site, token: str) -> None:
    """Open `/`, be sent to the sign-in form, sign in with `token`, land on `/`."""
    driver.get(f"{site.url}/")
    wait_until("the redirect to /login", lambda: driver.current_url.endswith("/login"), 30,
               lambda: driver.current_url + "\n" + site.tails())
    form = driver.find_element(By.ID, "login")
    box = form.find_element(By.CSS_SELECTOR, "input[name='token']")
    assert box.get_attribute("type") == "password"
    box.send_keys(token)
    driver.find_element(By.ID, "login-submit").click()
    wait_until("the windows list after sign-in",
               lambda: driver.find_elements(By.ID, "windows"), 30,
               lambda: driver.page_source[-2000:] + "\n" + site.tails())


def number(driver: webdriver.Chrome, element_id: str) -> float | None:
    """The first number shown in #element_id (None while it shows none). Read in one script
    call: the live fragment is swapped every few seconds, and on a busy machine a find and a
    separate read of its text could keep straddling a swap (the element gone stale each time)."""
    text = driver.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.innerText : null;",
        element_id)
    if text is None:
        raise NoSuchElementException(f"#{element_id}")
    m = NUMBER.search(str(text))
    return float(m.group().replace(",", "")) if m else None


def csrf(driver: webdriver.Chrome) -> str:
    """The session's CSRF token, from the sign-out form every page has."""
    box = driver.find_element(By.CSS_SELECTOR, "#logout input[name='csrf_token']")
    return str(box.get_attribute("value"))


def session(driver: webdriver.Chrome) -> dict[str, str]:
    """The browser's session cookie, to replay a request outside the browser."""
    cookie = driver.get_cookie("dcmeter_session")
    assert cookie is not None, driver.get_cookies()
    return {"dcmeter_session": str(cookie["value"])}


def agent_row_classes(driver: webdriver.Chrome) -> list[str]:
    row = driver.find_element(By.CSS_SELECTOR, f"#agents tr[data-agent='{AGENT_ID}']")
    return (row.get_attribute("class") or "").split()


def test_engineer_watches_a_window_live_stops_it_and_downloads_the_pdf(
    site: Site, desktop: webdriver.Chrome, downloads: Path,
) -> None:
    sign_in(desktop, site, site.engineer)
    cookie = desktop.get_cookie("dcmeter_session")
    assert cookie is not None and cookie["httpOnly"] and cookie.get("sameSite") == "Strict"
    assert site.engineer not in str(cookie["value"])  # a session id, never the bearer token

    form = desktop.find_element(By.ID, "start-window")
    form.find_element(By.CSS_SELECTOR, "select[name='kind'] option[value='infrastructure']"
                      ).click()
    form.find_element(By.CSS_SELECTOR, "input[name='note']").send_keys("browser test")
    desktop.find_element(By.ID, "start-submit").click()
    wid = wait_until("the live page of the new window",
                     lambda: re.search(r"/windows/(\d+)$", desktop.current_url), 30,
                     site.tails).group(1)
    with site.api(site.reader) as api:
        assert api.get(f"/api/v1/windows/{wid}").json()["window"]["state"] == "open"

    # PUE and energy appear, then change, without the page being loaded again.
    desktop.execute_script("window.__sameDocument = true")
    first_pue = wait_until("#pue shows a number", lambda: number(desktop, "pue"), LIVE_S,
                           site.tails)
    first_e = wait_until("#energy-total shows a number",
                         lambda: number(desktop, "energy-total"), LIVE_S, site.tails)
    assert 1.0 < first_pue < 3.0, first_pue
    wait_until("#energy-total grows", lambda: (number(desktop, "energy-total") or 0) > first_e,
               LIVE_S, site.tails)
    # The PUE follows the window's result: shown to 3 decimals, it may keep one value for
    # a minute while the simulated site's ratio drifts in the 4th (seen: this wait once
    # asked for a change of the shown digits, and failed in about one run of three, before
    # and after issue 20). So: once the API's PUE has moved, the page shows it (to within
    # one refresh's drift), without a reload.
    with site.api(site.reader) as api:
        def api_pue() -> float | None:
            got: float | None = api.get(f"/api/v1/windows/{wid}").json()["pue"]
            return got
        first_api = api_pue()

        def follows() -> bool:
            now, shown = api_pue(), number(desktop, "pue")
            return (now is not None and now != first_api and shown is not None
                    and abs(shown - now) <= 0.0015)
        wait_until("#pue follows the window's result", follows, LIVE_S, site.tails)
    assert desktop.execute_script("return window.__sameDocument === true"), "page reloaded"
    assert re.fullmatch(r"\d+:\d\d:\d\d", desktop.find_element(By.ID, "elapsed").text.strip())

    # The agent stops: its row goes stale; started again: it recovers.
    assert "stale" not in agent_row_classes(desktop)
    assert site.agent is not None
    stop(site.agent)
    wait_until("the stopped agent's row turns stale",
               lambda: "stale" in agent_row_classes(desktop), STALE_S, site.tails)
    assert "s ago" in desktop.find_element(
        By.CSS_SELECTOR, f"#agents tr[data-agent='{AGENT_ID}'] .last-batch").text
    site.start_agent()
    wait_until("the restarted agent's row recovers",
               lambda: "stale" not in agent_row_classes(desktop), STALE_S, site.tails)

    # Stop the window from the page: back on it, the window is closed.
    desktop.find_element(By.ID, "stop-submit").click()
    with site.api(site.reader) as api:
        wait_until("the window closed", lambda: api.get(f"/api/v1/windows/{wid}").json()
                   ["window"]["state"] == "closed", 30, site.tails)
    wait_until("back on the window's page",
               lambda: desktop.current_url.endswith(f"/windows/{wid}"), 30, site.tails)

    # The PDF report, downloaded by the browser with its session cookie.
    time.sleep(1.5)  # a sample after the end, to interpolate it
    desktop.find_element(By.ID, "dl-pdf-en").click()
    pdf = downloaded(downloads, ".pdf", 120)
    assert pdf.read_bytes()[:5] == b"%PDF-"


def _open_window(site: Site) -> int:
    with site.api(site.engineer) as api:
        r = api.post("/api/v1/windows", json={"kind": "infrastructure", "note": "reader test"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def _windows(site: Site) -> list[dict[str, object]]:
    with site.api(site.reader) as api:
        listed: list[dict[str, object]] = api.get("/api/v1/windows").json()
    return listed


def test_a_reader_sees_no_controls_and_is_refused_by_the_server(
    site: Site, desktop: webdriver.Chrome,
) -> None:
    wid = _open_window(site)
    try:
        sign_in(desktop, site, site.reader)
        assert desktop.find_elements(By.CSS_SELECTOR, f"#windows tr[data-window-id='{wid}']")
        assert not desktop.find_elements(By.ID, "start-window")
        desktop.get(f"{site.url}/windows/{wid}")
        wait_until("the live page", lambda: desktop.find_elements(By.ID, "live"), 30,
                   site.tails)
        assert not desktop.find_elements(By.ID, "stop-window")
        assert not desktop.find_elements(By.ID, "stop-submit")
        before = len(_windows(site))
        token, cookies = csrf(desktop), session(desktop)
        with httpx.Client(base_url=site.url, cookies=cookies, timeout=30.0) as web:
            r = web.post("/windows", data={"kind": "infrastructure", "note": "x", "scope": "",
                                           "csrf_token": token})
            assert r.status_code == 403, r.text
            r = web.post(f"/windows/{wid}/stop", data={"csrf_token": token})
            assert r.status_code == 403, r.text
        assert len(_windows(site)) == before
        with site.api(site.reader) as api:
            assert api.get(f"/api/v1/windows/{wid}").json()["window"]["state"] == "open"
    finally:
        with site.api(site.engineer) as api:
            api.post(f"/api/v1/windows/{wid}/stop")


def test_a_post_without_the_csrf_token_is_refused(site: Site, desktop: webdriver.Chrome) -> None:
    sign_in(desktop, site, site.engineer)
    token, cookies = csrf(desktop), session(desktop)
    before = len(_windows(site))
    with httpx.Client(base_url=site.url, cookies=cookies, timeout=30.0) as web:
        form = {"kind": "infrastructure", "note": "no csrf", "scope": ""}
        assert web.post("/windows", data=form).status_code == 403
        wrong = token[:-1] + ("0" if token[-1:] != "0" else "1")
        assert web.post("/windows", data={**form, "csrf_token": wrong}).status_code == 403
        assert web.post("/logout", data={}).status_code == 403
        # The same session with its token is let through (so the refusals above were CSRF's).
        r = web.post("/logout", data={"csrf_token": token})
        assert r.status_code in (200, 303), r.text
    assert len(_windows(site)) == before


def test_layout_at_1280_and_390_px(site: Site, desktop: webdriver.Chrome,
                                   phone: webdriver.Chrome) -> None:
    """No sideways scroll of the page body on a phone; screenshots for docs/ on request."""
    wid = _open_window(site)
    out = shots()
    try:
        for driver, name in ((desktop, "desktop"), (phone, "phone")):
            sign_in(driver, site, site.engineer)
            assert not scrolls_horizontally(driver), f"windows list scrolls at {name}"
            if out is not None and name == "desktop":
                screenshot(driver, out / "console-windows.png")
            driver.get(f"{site.url}/windows/{wid}")
            wait_until("#pue shows a number", partial(number, driver, "pue"), LIVE_S,
                       site.tails)
            time.sleep(6)  # a few more points on the chart
            assert not scrolls_horizontally(driver), f"live page scrolls at {name}"
            if out is not None:
                screenshot(driver, out / f"console-live-{name}.png")
    finally:
        with site.api(site.engineer) as api:
            api.post(f"/api/v1/windows/{wid}/stop")
