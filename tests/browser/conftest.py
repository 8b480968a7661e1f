"""Fixtures for the browser tests: real gateway processes and headless Chromium.

The binaries come from `target/debug` (or `$CHATGW_BIN_DIR`); `scripts/console-test`
builds them first. Chromium and chromedriver are Debian's (`/usr/bin/chromium`,
`/usr/bin/chromedriver`, or `$CHROME_BIN` / `$CHROMEDRIVER`): when either is missing
the tests fail, they never skip.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

ROOT = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("CHATGW_BIN_DIR", ROOT / "target" / "debug"))
SCREENSHOTS = Path(os.environ.get("CHATGW_SCREENSHOTS", ROOT / "target" / "console-screenshots"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, timeout=60, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} during start-up")
        try:
            req = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def api_get(base, path, key=None):
    req = urllib.request.Request(base + path)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


class Proc:
    """A child process with its log file, stopped with SIGTERM (then killed)."""

    def __init__(self, args, cwd, name):
        self.log_path = Path(cwd) / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(args, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def tail(self, n=40):
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def binary(name):
    path = BIN_DIR / name
    if not path.exists():
        pytest.fail(f"{path} is missing: build it first (cargo build -p chat-gateway -p provider-sim --bins)")
    return str(path)


@pytest.fixture(scope="session")
def workdir():
    d = tempfile.mkdtemp(prefix="chatgw-console-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def demo_env(workdir):
    """`chat-gateway demo` on a free loopback port (no keys)."""
    cwd = workdir / "demo"
    cwd.mkdir(exist_ok=True)
    port = free_port()
    p = Proc([binary("chat-gateway"), "demo", "--listen", f"127.0.0.1:{port}"], cwd, "demo")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/readyz", p.proc)
    except RuntimeError as e:
        p.stop()
        pytest.fail(f"{e}\n{p.tail()}")
    banner = p.log_path.read_text(errors="replace")
    m = re.search(r"simulators\s+(http://\S+)", banner)
    if not m:
        p.stop()
        pytest.fail(f"the demo banner names no simulator address:\n{banner}")
    yield Demo(base, m.group(1))
    p.stop()


class Demo:
    """A running demo: the gateway's address and its simulators' (control API under /_sim/)."""

    def __init__(self, base, sim):
        self.base = base
        self.sim = sim

    def traffic(self, on):
        """Starts or stops the simulators' scripted traffic."""
        path = "/_sim/traffic/start" if on else "/_sim/traffic/stop"
        body = json.dumps({"events_per_second": 2.0} if on else {}).encode()
        req = urllib.request.Request(self.sim + path, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 200, r.status


@pytest.fixture(scope="module")
def keyed(workdir):
    """`chat-gateway serve` with an API key, its accounts on a `provider-sim --provider all`."""
    cwd = workdir / "keyed"
    cwd.mkdir(exist_ok=True)
    sim_port, gw_port = free_port(), free_port()
    sim = Proc([binary("provider-sim"), "--provider", "all", "--listen", f"127.0.0.1:{sim_port}"], cwd, "sim")
    out = subprocess.run([binary("chat-gateway"), "key", "generate"], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    key, sha = fields["key"].strip(), fields["sha256"].strip()
    sim_url = f"http://127.0.0.1:{sim_port}"
    config = cwd / "chat-gateway.toml"
    config.write_text(f"""
[server]
listen = "127.0.0.1:{gw_port}"

[[api_keys]]
name = "console-test"
sha256 = "{sha}"
scopes = ["read", "write", "admin"]
accounts = ["*"]

[[accounts]]
name = "spark-main"
provider = "spark"
base_url = "{sim_url}"
timezone = "Asia/Shanghai"
headers = {{ Authorization = "Token demo" }}

[[accounts]]
name = "kf5"
provider = "kchat"
base_url = "{sim_url}"
email = "agent@example.com"
api_token = "demo-token"
timezone = "Asia/Shanghai"
poll_interval_secs = 3
""")
    gw = Proc([binary("chat-gateway"), "serve", "--config", str(config),
               "--database-url", f"sqlite://{cwd / 'keyed.db'}?mode=rwc"], cwd, "serve")
    base = f"http://127.0.0.1:{gw_port}"
    try:
        wait_http(base + "/readyz", gw.proc)
    except RuntimeError as e:
        gw.stop()
        sim.stop()
        pytest.fail(f"{e}\n{gw.tail()}")
    yield base, key
    gw.stop()
    sim.stop()


@pytest.fixture(scope="module")
def browser():
    chrome = os.environ.get("CHROME_BIN", "/usr/bin/chromium")
    driver_path = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
    for p in (chrome, driver_path):
        if not Path(p).exists():
            pytest.fail(f"{p} is missing: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,800", "--lang=en-US", "--no-first-run"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # An explicit driver path: Selenium Manager never downloads anything.
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    driver.set_window_size(1280, 800)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
