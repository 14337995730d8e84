"""The control room (/dashboard): the stream, the token-guarded actions, and the page in a real
headless Chromium (Selenium) against a real ``serve`` process and an in-process ``rl.Lab``.

The browser tests are skipped only when Chromium or chromedriver are missing (CI installs
``chromium`` and ``chromium-driver`` from Debian; ``selenium`` is in the test extra).
Set ``RLAB_SCREENSHOTS=DIR`` to keep the pages' screenshots.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service extra (fastapi, uvicorn, psycopg) is missing")

import httpx
import reliability_lab as rl
from reliability_lab.service.dashboard import percentile
from reliability_lab.service.harness import ServiceProcess
from service_helpers import (
    ADMIN_TOKEN,
    DatabaseFactory,
    admin_service,
    post_order,
    wait_for,
    write_scenario,
)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def read_stream(url: str, n: int, timeout: float = 60.0) -> list[tuple[str, dict[str, Any]]]:
    """The first ``n`` events of an SSE stream, as ``(event, data)``."""
    out: list[tuple[str, dict[str, Any]]] = []
    event = ""
    with httpx.stream("GET", url, timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
                if len(out) >= n:
                    break
    return out


@contextlib.contextmanager
def load(url: str, per_s: float = 40.0) -> Iterator[list[int]]:
    """POSTs orders to ``url`` from a thread at about ``per_s`` per second until the block ends."""
    stop = threading.Event()
    sent = [0]

    def run() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    post_order(client)
                    sent[0] += 1
                stop.wait(1.0 / per_s)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield sent
    finally:
        stop.set()
        t.join(30)


# --- without a browser --------------------------------------------------------------------


def test_percentile_interpolates_inside_the_bucket() -> None:
    bounds = [0.01, 0.1, 1.0, float("inf")]
    assert percentile(bounds, [0, 0, 0, 0], 0.5) is None
    # 10 in (0, 0.01], 10 in (0.01, 0.1]: the median is the top of the first bucket.
    assert percentile(bounds, [10, 20, 20, 20], 0.5) == pytest.approx(0.01)
    assert percentile(bounds, [10, 20, 20, 20], 0.75) == pytest.approx(0.055)
    # In the overflow bucket: the last finite bound.
    assert percentile(bounds, [0, 0, 0, 5], 0.99) == pytest.approx(1.0)


def test_stream_pushes_snapshots_on_each_database(
    make_database: DatabaseFactory,
    start_service: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    """SQLite and PostgreSQL: the stream starts with the history, then pushes snapshots with
    the engine's figures; a second client gets the same samples."""
    # No failures: the breaker stays closed (the default 30% could trip it by chance).
    scenario = write_scenario(
        tmp_path / "scenario.json",
        faults={"failure_rate": 0.0, "latency": {"type": "constant", "value": 0.002}},
    )
    svc = start_service(make_database(), "--scenario", str(scenario))
    with httpx.Client(base_url=svc.url, timeout=30) as client:
        wait_for(lambda: client.get("/startupz").status_code == 200, what="startup")
        for _ in range(20):
            assert post_order(client).status_code == 202
        page = client.get("/dashboard")
        assert page.status_code == 200 and "plotly.min.js" in page.text
        js = client.get("/dashboard/static/plotly.min.js")
        assert js.status_code == 200 and len(js.content) > 1_000_000
        assert client.get("/dashboard/static/..%2Fdashboard.py").status_code == 404
    events = read_stream(svc.url + "/dashboard/stream", 4)
    kinds = [e for e, _ in events]
    assert kinds == ["history", "snapshot", "snapshot", "snapshot"]
    history = events[0][1]
    assert history["dependencies"] == ["payment"]
    snaps = [d for _, d in events[1:]]
    assert [s["t"] for s in snaps] == sorted(s["t"] for s in snaps)
    last = snaps[-1]
    assert last["status"] == "running"
    assert last["arrived"] == 20
    assert last["breakers"] == {"payment": "closed"}
    assert last["workers"] == 64
    for key in ("goodput_per_s", "success_rate", "p50_ms", "p99_ms", "queue_depth"):
        assert key in last


def test_actions_need_the_token_and_are_annotated(tmp_path: Path) -> None:
    with admin_service(tmp_path, failure_rate=0.0) as svc:
        url = svc.url + "/dashboard/actions"
        body = {"action": "outage", "dependency": "payment", "duration_s": 5}
        assert httpx.post(url, json=body).status_code == 401
        bad = httpx.post(url, json=body, headers={"Authorization": "Bearer wrong-token-123"})
        assert bad.status_code == 403
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for wrong, field in (
            ({"action": "explode", "dependency": "payment"}, "action"),
            ({"action": "outage", "dependency": "nope"}, "dependency"),
            ({"action": "brownout", "dependency": "payment", "value": 2}, "value"),
            ({"action": "failure_rate", "dependency": "payment"}, "value"),
            ({"action": "outage", "dependency": "payment", "duration_s": -1}, "duration_s"),
            # serve's orders come from its HTTP clients: no arrival rate to steer.
            ({"action": "arrival_rate", "value": 10}, "arrival rate"),
        ):
            r = httpx.post(url, json=wrong, headers=auth)
            assert r.status_code == 422, r.text
            assert field in r.json()["message"]
        ok = httpx.post(url, json=body, headers=auth)
        assert ok.status_code == 200, ok.text
        assert ok.json()["annotate"] is True
        internals = httpx.get(svc.url + "/debug/internals", headers=auth).json()
        assert internals is not None
        r = httpx.post(
            url,
            json={"action": "failure_rate", "dependency": "payment", "value": 0.25},
            headers=auth,
        )
        assert r.status_code == 200
        # A change through PUT /lab/faults is drawn too; the history carries every action.
        r = httpx.patch(
            svc.url + "/lab/faults",
            json={"dependency": "payment", "faults": {"failure_rate": 0.0}},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        history = read_stream(svc.url + "/dashboard/stream", 1)[0][1]
        assert "arrival_rate" not in history["actions"] and "outage" in history["actions"]
        texts = [e["text"] for e in history["events"] if e["annotate"]]
        assert texts == [
            "payment: outage for 5 s",
            "payment: failure rate set to 0.25",
            "payment: fault model merged into via /lab/faults",
        ]


def test_clients_are_capped_and_leaving_costs_nothing(tmp_path: Path) -> None:
    with admin_service(tmp_path, failure_rate=0.0) as svc:
        url = svc.url + "/dashboard/stream"
        with contextlib.ExitStack() as stack:
            streams = []
            for _ in range(8):
                r = stack.enter_context(httpx.stream("GET", url, timeout=30))
                assert r.status_code == 200
                lines = r.iter_lines()
                assert next(lines) == "event: history"  # its generator runs: it counts
                streams.append(lines)
            refused = httpx.get(url, timeout=30)
            assert refused.status_code == 503
            assert refused.json()["error"] == "too_many_clients"
        # The eight left: a new client is alone.
        wait_for(
            lambda: [d for _, d in read_stream(url, 3)][-1]["clients"] == 1,
            what="the departed clients to be forgotten",
        )


def test_open_stream_sees_the_shutdown_and_does_not_hold_it_up(tmp_path: Path) -> None:
    """SIGTERM with a client watching: the stream logs the drain, ends, and the service exits 0
    (an endless stream would keep uvicorn waiting for the connection to close)."""
    got: list[tuple[str, dict[str, Any]]] = []
    with admin_service(tmp_path, failure_rate=0.0) as svc:
        url = svc.url + "/dashboard/stream"
        started = threading.Event()

        def watch() -> None:
            event = ""
            with httpx.stream("GET", url, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        got.append((event, json.loads(line[6:])))
                        started.set()

        t = threading.Thread(target=watch, daemon=True)
        t.start()
        assert started.wait(30)
    # admin_service stopped it with SIGTERM and checked the exit status (0).
    t.join(30)
    assert not t.is_alive(), "the stream did not end"
    assert got[-1][0] == "end"
    texts = [e["text"] for _, d in got if _ == "snapshot" for e in d["events"]]
    assert any(x.startswith("shutdown started") for x in texts), texts
    assert any(x.startswith("shutdown complete") for x in texts), texts


def test_lab_dashboard_serves_and_stops_with_the_lab() -> None:
    scenario = rl.Scenario(
        arrivals=rl.Poisson(rate=50.0),
        duration=60.0,
        workers=8,
        dependencies=[
            rl.Dependency(
                "payment",
                faults=rl.Faults(latency=rl.Constant(0.002)),
                breaker=rl.Breaker(consecutive_failures=5, open_for=1.0),
            )
        ],
    )
    with rl.Lab(scenario) as lab:
        board = lab.dashboard()
        assert board.url.startswith("http://127.0.0.1:")
        base = board.url.split("#")[0]
        assert "<iframe" in board._repr_html_()
        lab.start_load()
        body = {"action": "outage", "dependency": "payment", "duration_s": 30}
        assert httpx.post(base + "/actions", json=body).status_code == 401
        r = httpx.post(
            base + "/actions", json=body, headers={"Authorization": f"Bearer {board.token}"}
        )
        assert r.status_code == 200, r.text
        assert lab.faults("payment").phases[-1].name == "outage"
        auth = {"Authorization": f"Bearer {board.token}"}
        r = httpx.post(
            base + "/actions", json={"action": "arrival_rate", "value": 80}, headers=auth
        )
        assert r.status_code == 200, r.text
        assert lab.arrival_rate == 80.0
        r = httpx.post(base + "/actions", json={"action": "arrival_rate", "value": 0}, headers=auth)
        assert r.status_code == 422 and "value" in r.json()["message"]
        assert lab.arrival_rate == 80.0

        def opened() -> bool:
            snaps = [d for e, d in read_stream(base + "/stream", 2) if e == "snapshot"]
            return bool(snaps) and snaps[-1]["breakers"]["payment"] == "open"

        wait_for(opened, what="the breaker to open")
        lab.stop_load()
    # The lab's shutdown stops the dashboard.
    assert not board.running
    with pytest.raises(httpx.HTTPError):
        httpx.get(base, timeout=2)
    with pytest.raises(rl.LabClosedError):
        lab.dashboard()


# --- in a browser -------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None, reason="chromium and chromedriver are not installed"
)


@pytest.fixture
def browser() -> Iterator[Any]:
    # Selenium is in the test extra: missing, it is a failure, not a skip.
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMIUM is not None and CHROMEDRIVER is not None
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1500,1150",
        "--no-first-run",
        "--disable-extensions",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def console_errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def screenshot(driver: Any, name: str, tmp: Path) -> Path:
    out = Path(os.environ.get("RLAB_SCREENSHOTS", str(tmp)))
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def js(driver: Any, script: str) -> Any:
    return driver.execute_script(script)


def wait_js(driver: Any, script: str, what: str, timeout: float = 60.0) -> None:
    wait_for(lambda: bool(js(driver, script)), timeout=timeout, what=what)


# The payment breaker band's latest value (0 closed, 1 half-open, 2 open), a JS expression.
BAND = "((b) => (b.length ? b[b.length - 1] : null))(window.rlabState.bands.payment)"


def click(driver: Any, element_id: str) -> None:
    driver.find_element("id", element_id).click()


@needs_browser
def test_page_shows_live_charts_and_the_outage_button_opens_the_breaker(
    tmp_path: Path, browser: Any
) -> None:
    with admin_service(tmp_path, failure_rate=0.0) as svc, load(svc.url) as sent:
        wait_for(lambda: sent[0] > 10, what="the first orders")
        browser.get(svc.url + "/dashboard")
        # Plotly drew the charts, and updates keep coming.
        wait_js(browser, "return window.rlabUpdates >= 2", "the first updates")
        n = js(browser, "return window.rlabUpdates")
        wait_js(browser, f"return window.rlabUpdates >= {n + 3}", "more updates")
        assert js(browser, "return document.querySelectorAll('.js-plotly-plot').length") == 7
        throughput = js(browser, "return document.getElementById('throughput').data[0].y.length")
        assert throughput >= 3
        # serve's orders come from its clients: no arrival-rate control.
        assert not browser.find_element("id", "arrival-controls").is_displayed()
        assert js(browser, f"return {BAND}") == 0  # closed: green
        assert browser.find_element("id", "breaker-payment").get_attribute("data-state") == "closed"
        assert console_errors(browser) == []

        browser.find_element("id", "token").send_keys(ADMIN_TOKEN)
        browser.find_element("id", "duration").clear()
        browser.find_element("id", "duration").send_keys("60")
        click(browser, "outage")
        wait_js(
            browser,
            "return document.getElementById('result').dataset.status === '200'",
            "the outage to be accepted",
        )
        wait_js(browser, f"return ({BAND}) === 2", "the payment band to turn open", 30)
        assert browser.find_element("id", "breaker-payment").get_attribute("data-state") == "open"
        # The action is in the event log and drawn on the charts.
        wait_js(
            browser,
            "return document.getElementById('throughput').layout.shapes.length >= 1",
            "the annotation",
        )
        log_text = browser.find_element("id", "events").text
        assert "payment: outage for 60 s" in log_text
        wait_js(
            browser,
            "return document.getElementById('events').textContent.includes('closed \u2192 open')",
            "the transition in the event log",
        )
        screenshot(browser, "dashboard-outage", tmp_path)

        click(browser, "recover")
        wait_js(browser, f"return ({BAND}) === 0", "the band to turn closed again", 60)
        assert browser.find_element("id", "breaker-payment").get_attribute("data-state") == "closed"
        time.sleep(1.5)  # a few closed samples after the open ones, for the picture
        screenshot(browser, "dashboard-recovered", tmp_path)
        assert console_errors(browser) == []

        # Without the right token, the page's actions are refused.
        browser.find_element("id", "token").clear()
        click(browser, "outage")
        wait_js(
            browser,
            "return document.getElementById('result').dataset.status === '401'",
            "the refusal",
        )
        browser.find_element("id", "token").send_keys("not-the-token")
        click(browser, "brownout")
        wait_js(
            browser,
            "return document.getElementById('result').dataset.status === '403'",
            "the refusal",
        )
        assert js(browser, f"return {BAND}") == 0  # nothing happened
        # The only console errors are the two refused requests.
        errors = console_errors(browser)
        assert errors and all("dashboard/actions" in e["message"] for e in errors), errors


@needs_browser
def test_page_of_a_lab_dashboard(tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.support.ui import Select

    scenario = rl.Scenario(
        arrivals=rl.Poisson(rate=100.0),
        duration=120.0,
        workers=8,
        dependencies=[
            rl.Dependency(
                "payment",
                faults=rl.Faults(failure_rate=0.05, latency=rl.Exponential(mean=0.01)),
                retry=rl.RetryConfig(max_attempts=3),
                breaker=rl.Breaker(consecutive_failures=5, open_for=2.0),
                budget=rl.TokenBucketConfig(max_tokens=20, token_ratio=0.1),
            ),
            rl.Dependency("inventory", faults=rl.Faults(latency=rl.Constant(0.002))),
        ],
    )
    with rl.Lab(scenario) as lab:
        lab.start_load()
        board = lab.dashboard()
        browser.get(board.url)  # the token rides in the fragment
        wait_js(browser, "return window.rlabUpdates >= 3", "updates")
        # The token bucket's level, on the amplification chart's second axis.
        names = js(browser, "return document.getElementById('amplification').data.map(t => t.name)")
        assert "payment budget tokens" in names, names
        assert "inventory budget tokens" not in names
        assert browser.find_element("id", "breaker-inventory").get_attribute("data-state") == "none"
        click(browser, "outage")  # payment: the first dependency
        wait_js(browser, f"return ({BAND}) === 2", "the payment band to turn open", 30)
        # The lab's own load generator: its arrival rate can be steered from the page.
        assert browser.find_element("id", "arrival-controls").is_displayed()
        browser.find_element("id", "arrivals").clear()
        browser.find_element("id", "arrivals").send_keys("250")
        click(browser, "arrival_rate")
        wait_js(
            browser,
            "return document.getElementById('result').textContent.includes('250/s')",
            "the arrival rate change",
        )
        assert lab.arrival_rate == 250.0
        wait_js(
            browser,
            "const s = window.rlabState.series.offered_per_s; return s[s.length - 1] === 250",
            "the offered rate on the chart",
        )
        # The breaker knob: filled with the breaker's parameters, set from the page, drawn.
        assert browser.find_element("id", "breaker-controls").is_displayed()
        failures = browser.find_element("id", "breaker-failures")
        assert failures.get_attribute("value") == "5"
        assert browser.find_element("id", "breaker-open-for").get_attribute("value") == "2"
        failures.clear()
        failures.send_keys("3")
        click(browser, "breaker")
        wait_js(
            browser,
            "return document.getElementById('result').textContent"
            ".includes('consecutive_failures 3')",
            "the breaker change",
        )
        assert lab.breaker("payment") == rl.Breaker(consecutive_failures=3, open_for=2.0)
        wait_js(  # the event comes with the next snapshot
            browser,
            "return document.getElementById('events').textContent"
            ".includes('payment: breaker set (consecutive_failures 3, open_for 2 s)')",
            "the breaker change in the event log",
        )
        wait_js(
            browser,
            "return window.rlabState.annotations.some(a => a.action === 'breaker')",
            "the breaker annotation",
        )
        wait_js(
            browser,
            "return document.getElementById('throughput').layout.annotations"
            ".some(a => a.text === 'breaker')",
            "the annotation drawn",
        )
        # A bad value is refused with the scenario's message; nothing changes.
        browser.find_element("id", "breaker-open-for").clear()
        browser.find_element("id", "breaker-open-for").send_keys("-1")
        click(browser, "breaker")
        wait_js(
            browser,
            "return document.getElementById('result').dataset.status === '422'",
            "the refusal",
        )
        assert "payment.breaker.open_for must be" in browser.find_element("id", "result").text
        assert lab.breaker("payment") == rl.Breaker(consecutive_failures=3, open_for=2.0)
        # inventory has no breaker: the knob is off for it.
        Select(browser.find_element("id", "dependency")).select_by_value("inventory")
        assert not browser.find_element("id", "breaker").is_enabled()
        Select(browser.find_element("id", "dependency")).select_by_value("payment")
        time.sleep(2.0)  # a few samples at the new rate, for the picture
        screenshot(browser, "lab-dashboard-running", tmp_path)
        # The only console error is the refused breaker change.
        errors = console_errors(browser)
        assert all("dashboard/actions" in e["message"] for e in errors), errors
        lab.stop_load()
    # The lab's shutdown ends the stream: the page says so.
    wait_js(
        browser,
        "return document.getElementById('status').textContent.startsWith('stopped')",
        "the page to see the end",
    )
    assert "shutdown complete" in browser.find_element("id", "events").text
    screenshot(browser, "lab-dashboard-stopped", tmp_path)


def test_lab_dashboard_controls_reach_a_services_own_dependency() -> None:
    leaf = rl.Dependency("leaf", faults=rl.Faults(latency=rl.Constant(0.001)), breaker=rl.Breaker())
    scenario = rl.Scenario(
        arrivals=rl.Poisson(rate=50.0),
        duration=60.0,
        workers=4,
        dependencies=[rl.Dependency("to_b", service="b")],
        services=[rl.Service(name="b", workers=4, dependencies=(leaf,))],
    )
    with rl.Lab(scenario) as lab:
        board = lab.dashboard()
        base = board.url.split("#")[0]
        auth = {"Authorization": f"Bearer {board.token}"}
        history = read_stream(base + "/stream", 1)[0][1]
        assert history["dependencies"] == ["to_b"]
        assert history["controls"] == ["to_b", "b.leaf"]
        assert "breaker" in history["actions"]
        body = {"action": "outage", "dependency": "b.leaf", "duration_s": 30}
        r = httpx.post(base + "/actions", json=body, headers=auth)
        assert r.status_code == 200, r.text
        assert lab.faults("b.leaf").phases[-1].name == "outage"
        assert lab.faults("b.leaf").phases[-1].failure_rate == 1.0
        change = {"action": "breaker", "dependency": "b.leaf", "breaker": {"open_for": 7.0}}
        r = httpx.post(base + "/actions", json=change, headers=auth)
        assert r.status_code == 200, r.text
        b = lab.breaker("b.leaf")
        assert b is not None and b.open_for == 7.0
