"""A real headless browser for the tests: Debian's chromium, driven over the DevTools protocol.

Chromium talks over `--remote-debugging-pipe` (file descriptors 3 and 4, NUL-separated JSON),
so no port, no websocket library, no driver download. One `Page` is one tab; it records what
the page logged as errors (console, uncaught exceptions, failed loads, CSP violations) and
every request the page made, so a test can assert "no console errors" and "nothing fetched".
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ARTIFACTS = Path(os.environ.get("KIT_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")


def find_chromium() -> str | None:
    """The chromium to use: $KIT_CHROMIUM, else the first of Debian's and others' names on PATH."""
    if os.environ.get("KIT_CHROMIUM"):
        return os.environ["KIT_CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless chromium process; `open(url)` gives a tab."""

    def __init__(self, executable: str, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="kit-chromium-")
        to_browser, self._write = os.pipe()
        self._read, from_browser = os.pipe()

        def fds() -> None:  # in the child: the pipes become fds 3 (commands in) and 4 (replies out)
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser, from_browser)]  # clobber neither
            os.dup2(high[0], 3)  # dup2's copies are inherited; every other fd of ours is not (PEP 446)
            os.dup2(high[1], 4)

        self.log = open(Path(self.profile) / "stderr.log", "wb")  # closed in close()
        self.proc = subprocess.Popen(
            [executable, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
             "--no-default-browser-check", "--disable-dev-shm-usage", "--disable-extensions",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={self.profile}", "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, preexec_fn=fds, close_fds=False)
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []
        self.send("Browser.getVersion")

    # -- the protocol -------------------------------------------------------------------------------

    def send(self, method: str, session: str | None = None, **params) -> dict:
        """Send one command and wait for its reply; events that arrive meanwhile are kept in `events`."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str | None = None, *, since: int = 0) -> dict:
        """The first event `method` (of `session`) at or after index `since` of `events`, waiting for it."""
        deadline = time.monotonic() + self.timeout
        while True:
            for event in self.events[since:]:
                if event.get("method") == method and (session is None or event.get("sessionId") == session):
                    return event
            self.events.append(self._receive(deadline))

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._read], [], [], left)[0]:
                raise BrowserError(f"chromium did not answer in {self.timeout:g} s")
            chunk = os.read(self._read, 1 << 20)
            if not chunk:
                raise BrowserError(f"chromium exited (status {self.proc.poll()}): see {self.log.name}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    # -- tabs ---------------------------------------------------------------------------------------

    def open(self, url: str, *, width: int = 1280, height: int = 900) -> Page:
        """A new tab, `width` CSS pixels wide, that has loaded `url` (its load event fired)."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        page = Page(self, session, target)
        for domain in ("Page", "Runtime", "Log", "Network"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)
        since = len(self.events)
        page.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired", session, since=since)
        page.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))", await_promise=True)
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._write)
        os.close(self._read)
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab of a `Browser`."""

    def __init__(self, browser: Browser, session: str, target: str) -> None:
        self.browser, self.session, self.target = browser, session, target

    def send(self, method: str, **params) -> dict:
        return self.browser.send(method, self.session, **params)

    def _mine(self, method: str) -> list[dict]:
        return [e["params"] for e in self.browser.events
                if e.get("sessionId") == self.session and e.get("method") == method]

    def evaluate(self, expression: str, *, await_promise: bool = False):
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=await_promise)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    @property
    def errors(self) -> list[str]:
        """Everything the page reported as an error: console.error, uncaught exceptions, failed loads, CSP."""
        self.send("Runtime.evaluate", expression="0")  # let events already sent arrive
        found = [" ".join(str(a.get("value", a.get("description", ""))) for a in e["args"])
                 for e in self._mine("Runtime.consoleAPICalled") if e["type"] in ("error", "assert")]
        found += [e["exceptionDetails"].get("exception", {}).get("description") or e["exceptionDetails"]["text"]
                  for e in self._mine("Runtime.exceptionThrown")]
        found += [f"{e['entry']['source']}: {e['entry']['text']}" for e in self._mine("Log.entryAdded")
                  if e["entry"]["level"] == "error"]
        return found

    @property
    def requests(self) -> list[str]:
        """The URL of every request the page made, its own included."""
        return [e["request"]["url"] for e in self._mine("Network.requestWillBeSent")]

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) in the middle of the element `selector` matches."""
        box = self.evaluate(f"""(() => {{
            const el = document.querySelector({json.dumps(selector)});
            el.scrollIntoView({{block: "center"}});
            const r = el.getBoundingClientRect();
            return {{x: r.left + r.width / 2, y: r.top + r.height / 2}};
        }})()""")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box["x"], y=box["y"], button="left", clickCount=1)

    def screenshot(self, path: Path) -> Path:
        """The whole page (not just the window) as a PNG at `path`."""
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path
