"""Screenshots of the web console's pages for the docs: ``docs/console/<page>.png`` at 1280x800.

Starts a real ``fleet-emulator serve`` (demo scenario, simulator on and fast) with its console on free
ports, plays a client that breaks a few practices (polling too often, a command to an asleep vehicle, a call
failed by a fault rule) so that the Journal, Faults and Report pages have something to show, then opens
each page in Debian's headless Chromium (``chromium`` on the PATH; never a downloaded browser), waits for
its data and writes the screenshot. Run it with ``.venv/bin/python scripts/screenshots.py``.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from playwright.sync_api import Page, expect, sync_playwright

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2, admin_pb2_grpc
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2_grpc as v2_grpc

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "console"
FLEET_EMULATOR = Path(sys.executable).parent / "fleet-emulator"
READY_TIMEOUT_S = 20.0
ONLINE = "94d36e21-ca69-4a5b-b2b7-8068122e7362"  # label 429 of the demo, online and on a mission
ASLEEP = "76350d1a-8df5-4217-8d58-207f4e1e0b90"  # label 1005 of the demo, asleep
UNAVAILABLE = 14

# Each page: its route, and a locator that shows once its data is drawn.
PAGES = {
    "fleets": ("#/fleets/hamburg", "[data-testid=map-vehicle]"),
    "vehicle": (f"#/vehicle/{ONLINE}", "[data-testid=event-row]"),
    "events": ("#/events/hamburg", "[data-testid=event-row]"),
    "journal": ("#/journal", "[data-testid=journal-row]"),
    "faults": ("#/faults", "[data-testid=fault-row]"),
    "clock": ("#/clock", "[data-testid=clock-now]:not(:empty)"),
    "report": ("#/report", "[data-testid=finding]"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise SystemExit(f"fleet-emulator serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"the console at {url} did not answer within {READY_TIMEOUT_S:.0f} s"
                ) from None
            time.sleep(0.1)


@contextmanager
def emulator(log: Path) -> Iterator[tuple[str, str]]:
    """A serving emulator with the simulator on: its gRPC address and console URL."""
    port, console_port = free_port(), free_port()
    command = [
        str(FLEET_EMULATOR), "serve", "--host", "127.0.0.1", "--port", str(port),
        "--console-port", str(console_port), "--simulate", "--simulation-rate", "5",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{console_port}"
        wait_healthy(url, process)
        yield f"127.0.0.1:{port}", url
    finally:
        process.terminate()
        process.wait(10)


def refused(call: Callable[[], object]) -> None:
    """Make a call the emulator should refuse; stop if it does not."""
    try:
        call()
    except grpc.RpcError:
        return
    raise SystemExit("the emulator answered a call it should have refused")


def play_a_client(address: str) -> None:
    """Calls a careless client makes: a vehicle read too often, a read failed by a fault rule (which stays,
    with its hit), and commands to an asleep vehicle. The console's own calls meet no fault rule."""
    with grpc.insecure_channel(address) as channel:
        api, admin = v2_grpc.FleetStateServiceStub(channel), admin_pb2_grpc.AdminServiceStub(channel)
        api.ListVehicles(v2.ListVehiclesRequest(fleet_id="hamburg", page_size=10))
        for _ in range(3):
            api.GetVehicle(v2.GetVehicleRequest(vehicle_id=ONLINE))
        fail = admin_pb2.FailCall(code=UNAVAILABLE, message="maintenance window")
        admin.CreateFault(admin_pb2.CreateFaultRequest(fault=admin_pb2.Fault(method="GetVehicle", fail=fail)))
        refused(lambda: api.GetVehicle(v2.GetVehicleRequest(vehicle_id=ONLINE)))
        for _ in range(2):
            refused(lambda: api.HonkHorn(v2.HonkHornRequest(vehicle_id=ASLEEP)))


def shoot(page: Page, url: str, name: str, route: str, ready: str) -> Path:
    page.goto(f"{url}/{route}")
    expect(page.locator("h1")).to_have_text(name.title())
    expect(page.locator(ready).first).to_be_visible(timeout=20_000)
    page.wait_for_timeout(300)  # let the last live update settle before the picture is taken
    path = OUT / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on the PATH: install Debian's chromium package")
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, emulator(Path(tmp) / "serve.log") as (address, url):
        play_a_client(address)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            for name, (route, ready) in PAGES.items():
                print(shoot(page, url, name, route, ready).relative_to(ROOT))
            browser.close()
    if problems:
        raise SystemExit("the console logged problems:\n" + "\n".join(problems))


if __name__ == "__main__":
    main()
