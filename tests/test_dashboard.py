"""The live page (``dashboard_blueprint``), in Debian's chromium driven by playwright, served over real HTTP by
the app whose broker calls a backend process: its processes, channels with schemas, the plot of this process's
calls and its recent errors; it asks nothing of any other host. A screenshot is kept in build/test-artifacts."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Page, Request, Route, sync_playwright
from werkzeug.serving import make_server

from flask_multi_redis import FlaskRedisSingle
from flask_multi_redis.broker import RemoteError
from flask_multi_redis.dashboard import RecentCalls, dashboard_blueprint

from .apps.svc import AddIn, Who, add, fail, whoami
from .processes import ROOT, start_serve, stop_serve
from .test_extension import closed_port

MakeApp = Callable[..., Flask]

ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


@pytest.fixture
def backend(redis_url: str) -> Iterator[int]:
    """A backend process serving math.add and test.fail; its pid."""
    process = start_serve({**os.environ, "REDIS_URL": redis_url, "REDIS_PREFIX": "dash", "PYTHONPATH": str(ROOT)})
    yield process.pid
    stop_serve(process)


@pytest.fixture
def web(make_app: MakeApp, redis_url: str, backend: int) -> Iterator[tuple[Flask, FlaskRedisSingle]]:
    app = make_app(REDIS={"URL": redis_url, "PREFIX": "dash"})
    ext = FlaskRedisSingle(app)
    ext.broker.command(whoami)(lambda _: Who(pid=os.getpid(), role="web", app="web", greenlet=False, thread="-"))
    app.register_blueprint(dashboard_blueprint(ext), url_prefix="/redis")
    yield app, ext
    with app.app_context():
        ext.broker.stop()


@pytest.fixture
def served(web: tuple[Flask, FlaskRedisSingle]) -> Iterator[str]:
    """The app on a real HTTP server; its base URL."""
    server = make_server("127.0.0.1", 0, web[0], threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def make_traffic(app: Flask, ext: FlaskRedisSingle) -> None:
    with app.app_context():
        for i in range(12):
            assert ext.broker.request(add, AddIn(a=i, b=1), timeout=5).sum == i + 1
        for _ in range(3):
            with pytest.raises(RemoteError):
                ext.broker.request(fail, {"secret_field": 1}, timeout=5)


def test_the_data_endpoint(web: tuple[Flask, FlaskRedisSingle], backend: int) -> None:
    app, ext = web
    make_traffic(app, ext)
    data = app.test_client().get("/redis/data").get_json()
    assert data["prefix"] == "dash"
    assert data["health"]["ready"] is True
    assert backend in [process["pid"] for process in data["processes"]]
    assert data["unavailable"] is None
    calls = [point["calls"] for point in data["series"]["points"] if "calls" in point]
    assert sum(step["count"] for step in calls) == 15
    assert sum(step["errors"] for step in calls) == 3
    assert all(step["p50_ms"] > 0 for step in calls)
    (error, *_) = data["errors"]
    assert (error["what"], error["kind"], error["channel"], error["type"]) == (
        "calls",
        "request",
        "test.fail",
        "RemoteError",
    )
    assert len(data["errors"]) == 3


def test_the_data_endpoint_says_when_redis_is_unavailable(make_app: MakeApp) -> None:
    app = make_app(REDIS={"URL": f"redis://127.0.0.1:{closed_port()}", "PREFIX": "dash", "SOCKET_TIMEOUT": 0.5})
    ext = FlaskRedisSingle(app)
    app.register_blueprint(dashboard_blueprint(ext), url_prefix="/redis")
    answer = app.test_client().get("/redis/data")
    assert answer.status_code == 200
    data = answer.get_json()
    assert data["processes"] is None
    assert data["unavailable"].startswith("BrokerUnavailable: could not read the registry")
    assert data["health"]["ready"] is False
    with app.app_context():
        ext.broker.stop()


def test_recent_calls_forget_what_left_the_window(web: tuple[Flask, FlaskRedisSingle]) -> None:
    app, ext = web
    recent = RecentCalls(window=0, step=1)  # every step is older than the window as soon as the next call ends
    ext.broker.instrument(recent)
    make_traffic(app, ext)
    assert len(recent.series()["points"]) <= 1
    assert len(recent.errors) == 3


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "the dashboard test needs Debian's chromium (apt-get install chromium; .ci/run installs it)"
    return found


def test_the_page_in_a_real_browser(served: str, web: tuple[Flask, FlaskRedisSingle], backend: int) -> None:
    app, ext = web
    make_traffic(app, ext)
    asked: list[str] = []
    page_errors: list[str] = []

    def only_here(route: Route, request: Request) -> None:
        asked.append(request.url)
        if request.url.startswith(served):
            route.continue_()
        else:
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page: Page = browser.new_page(viewport={"width": 1000, "height": 1100})
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.route("**/*", only_here)
            page.goto(f"{served}/redis/")
            page.wait_for_selector("body[data-loaded=yes]", timeout=10_000)
            assert page.locator("#state").inner_text() == "ready"
            rows = page.locator("#processes tbody tr")
            assert str(backend) in [rows.nth(i).get_attribute("data-pid") for i in range(rows.count())]
            assert page.locator(f'#processes tr[data-pid="{backend}"] td').nth(0).inner_text() == "worker"
            channel = page.locator('#channels tr[data-channel="test.whoami"]')
            assert channel.locator("td").nth(1).inner_text() == "command"
            channel.locator("summary").nth(1).click()  # the reply schema opens
            assert '"greenlet"' in channel.locator("pre").nth(1).inner_text()
            errors = page.locator("#errors tbody tr")
            assert errors.count() == 3
            assert "test.fail" in errors.nth(0).inner_text()
            assert "RemoteError: ValueError" in errors.nth(0).inner_text()
            calls = page.locator('#rate-plot path[data-line="calls"]')
            assert calls.count() == 1
            assert page.locator("#latency-plot circle").count() >= 1
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert page_errors == []
    assert asked
    assert all(url.startswith(served) for url in asked), asked
