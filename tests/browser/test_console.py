"""The web console in a real browser against a real ``fleet-emulator serve``: what a tester sees and does.

Each page shows its title; the Fleets, Events and Vehicle pages follow changes made by a gRPC client
without a reload; the Faults, Clock and Vehicle pages steer the emulator, checked over gRPC or in the
Journal; refused calls show their code and details; a token-protected console asks for the token; the
pages are reachable by keyboard and fit a narrow window. The screenshots in ``docs/console`` are checked
to exist for every page of the navigation, at 1280x800.
"""

from __future__ import annotations

import re
import struct
import uuid
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from playwright.sync_api import expect

from fleet_emulator._gen.emulator.admin.v1 import admin_pb2
from fleet_emulator._gen.moia.fleet.state.v2 import fleet_state_pb2 as v2
from tests.browser.conftest import Console, PageOpener, console_serving

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
INDEX = ROOT / "src" / "fleet_emulator" / "console" / "static" / "index.html"
SCREENSHOTS = ROOT / "docs" / "console"
ONLINE = "94d36e21-ca69-4a5b-b2b7-8068122e7362"  # label 429 of the demo's hamburg fleet
ASLEEP = "76350d1a-8df5-4217-8d58-207f4e1e0b90"  # label 1005, asleep in the demo
HAMBURG_VEHICLES = 27
NARROW = {"width": 420, "height": 800}


class NavNames(HTMLParser):
    """The texts of the links in index.html's <nav>."""

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []
        self._in_nav = self._in_link = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_nav = self._in_nav or tag == "nav"
        self._in_link = self._in_nav and tag == "a"

    def handle_endtag(self, tag: str) -> None:
        self._in_nav = self._in_nav and tag != "nav"
        self._in_link = self._in_link and tag != "a"

    def handle_data(self, data: str) -> None:
        if self._in_link and data.strip():
            self.names.append(data.strip())


def nav_names() -> list[str]:
    parser = NavNames()
    parser.feed(INDEX.read_text())
    return parser.names


def test_the_navigation_has_the_seven_pages() -> None:
    assert nav_names() == ["Fleets", "Vehicle", "Events", "Journal", "Faults", "Clock", "Report"]


def test_every_page_shows_its_title(console: Console, open_page: PageOpener) -> None:
    page = open_page(console)
    for name in nav_names():
        page.get_by_role("navigation", name="Pages").get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", level=1)).to_have_text(name)
        expect(page).to_have_title(re.compile(f"^{name} "))
        expect(page.get_by_role("link", name=name, exact=True)).to_have_attribute("aria-current", "page")


def test_fleets_shows_the_demo_fleets_with_their_vehicles_and_map(
    console: Console, open_page: PageOpener
) -> None:
    page = open_page(console, "#/fleets")
    fleets = page.get_by_test_id("fleet-row")
    expect(fleets).to_have_count(2)
    expect(fleets.filter(has_text="MOIA Hamburg")).to_contain_text("27")
    expect(fleets.filter(has_text="MOIA Hanover")).to_contain_text("8")
    expect(page.get_by_test_id("vehicle-row")).to_have_count(HAMBURG_VEHICLES)
    expect(page.get_by_test_id("map-vehicle")).to_have_count(HAMBURG_VEHICLES)
    page.get_by_role("link", name="hanover", exact=True).click()
    expect(page.get_by_test_id("vehicle-row")).to_have_count(8)
    page.get_by_test_id("vehicle-row").first.get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Vehicle")
    expect(page.get_by_test_id("vehicle-state")).to_contain_text("hanover")


def test_a_vehicle_changed_over_grpc_shows_on_fleets_without_reload(
    own_namespace: Console, open_page: PageOpener
) -> None:
    page = open_page(own_namespace, "#/fleets/hamburg")
    battery = page.locator(f"[data-vehicle-id='{ONLINE}'] [data-field=battery]")
    expect(battery).not_to_be_empty()
    page.evaluate("window.stillTheSamePage = true")
    vehicle = v2.Vehicle(id=ONLINE, battery=v2.Battery(state_of_charge_percent=12.5))
    mask = field_mask_pb2.FieldMask(paths=["battery.state_of_charge_percent"])
    request = admin_pb2.UpdateVehicleRequest(vehicle=vehicle, update_mask=mask)
    own_namespace.admin.UpdateVehicle(request, metadata=own_namespace.metadata)
    expect(battery).to_have_text("12.5 %")
    assert page.evaluate("window.stillTheSamePage") is True


def test_a_published_event_shows_on_events_without_reload(
    own_namespace: Console, open_page: PageOpener
) -> None:
    page = open_page(own_namespace, "#/events/hamburg")
    expect(page.get_by_label("Message id to resume or poll after")).not_to_have_value(
        ""
    )  # the stream is open
    flow_id = f"browser-{uuid.uuid4().hex[:12]}"
    event = v2.Event(
        vehicle_id=ONLINE, flow_id=flow_id, lock_changed=v2.LockChanged(lock_state=v2.LOCK_STATE_UNLOCKED)
    )
    published = own_namespace.admin.PublishEvent(
        admin_pb2.PublishEventRequest(event=event), metadata=own_namespace.metadata
    )
    row = page.locator(f"[data-testid=event-table] [data-message-id='{published.message_id}']")
    expect(row).to_contain_text("lock_changed")
    expect(row).to_contain_text(flow_id)
    expect(row).to_contain_text("UNLOCKED")


def test_events_shows_why_a_resume_is_out_of_range(own_namespace: Console, open_page: PageOpener) -> None:
    page = open_page(own_namespace, "#/events/hamburg")
    page.get_by_role("button", name="Pause").click()
    page.get_by_label("Message id to resume or poll after").fill("99999999999999-0")
    page.get_by_role("button", name="Resume").click()
    ended = page.get_by_test_id("stream-end")
    expect(ended.get_by_test_id("status-code")).to_have_text("OUT_OF_RANGE (11)")
    expect(ended.locator("[data-detail=ErrorInfo] [data-field=reason]")).to_have_text("MESSAGE_ID_UNKNOWN")


def test_poll_reads_the_events_after_a_message_id(own_namespace: Console, open_page: PageOpener) -> None:
    page = open_page(own_namespace, "#/events/hanover")
    position = page.get_by_label("Message id to resume or poll after")
    expect(position).not_to_have_value("")
    page.get_by_role("button", name="Pause").click()
    vehicle_id = (
        own_namespace.api.ListVehicles(
            v2.ListVehiclesRequest(fleet_id="hanover"), metadata=own_namespace.metadata
        )
        .vehicles[0]
        .id
    )
    event = v2.Event(vehicle_id=vehicle_id, doors_changed=v2.DoorsChanged())
    own_namespace.admin.PublishEvent(
        admin_pb2.PublishEventRequest(event=event), metadata=own_namespace.metadata
    )
    page.get_by_role("button", name="Poll").click()
    expect(page.get_by_test_id("poll-result")).to_contain_text("1 events")
    expect(page.locator("[data-testid=poll-table] [data-kind=doors_changed]")).to_have_count(1)


def test_a_fault_added_on_faults_fails_a_grpc_call_seen_in_the_journal(
    own_namespace: Console, open_page: PageOpener
) -> None:
    page = open_page(own_namespace, "#/faults")
    page.get_by_label("Method (name, full name or *)").fill("GetVehicle")
    page.get_by_label("Times (0: until deleted)").fill("2")
    page.get_by_label("Action").select_option("fail")
    failing = page.get_by_role("group", name="Fail with a code")
    failing.get_by_label("Code").select_option(label="UNAVAILABLE (14)")
    failing.get_by_label("Reason").fill("BROWSER_TEST")
    page.get_by_role("button", name="Add fault").click()
    rule = page.get_by_test_id("fault-row")
    expect(rule).to_have_count(1)
    expect(rule).to_contain_text("UNAVAILABLE (14)")

    with pytest.raises(grpc.RpcError) as failed:
        own_namespace.api.GetVehicle(
            v2.GetVehicleRequest(vehicle_id=ONLINE),
            metadata=(*own_namespace.metadata, ("x-flow-id", "fault-flow-1")),
        )
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    expect(rule.locator("[data-field=hits]")).to_have_text("1")

    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Journal").click()
    call = page.locator("[data-testid=journal-row][data-method=GetVehicle][data-code=UNAVAILABLE]")
    expect(call.locator("[data-field=reason]")).to_have_text("BROWSER_TEST")
    call.get_by_role("button").click()
    detail = page.get_by_role("dialog")
    expect(detail.get_by_test_id("status").locator("[data-field=reason]")).to_have_text("BROWSER_TEST")
    expect(detail.get_by_test_id("status")).to_contain_text("fault-flow-1")  # RequestInfo, ErrorInfo
    expect(detail.get_by_test_id("status-code")).to_have_text("UNAVAILABLE (14)")
    expect(detail).to_contain_text(ONLINE)  # the request
    page.keyboard.press("Escape")
    expect(detail).to_be_hidden()


def test_faults_deletes_a_rule_and_clears_them_all(own_namespace: Console, open_page: PageOpener) -> None:
    for method in ("GetFleet", "ListFleets", "GetVehicle"):
        fault = admin_pb2.Fault(
            method=method, latency=admin_pb2.AddLatency(delay=duration_pb2.Duration(nanos=1))
        )
        own_namespace.admin.CreateFault(
            admin_pb2.CreateFaultRequest(fault=fault), metadata=own_namespace.metadata
        )
    page = open_page(own_namespace, "#/faults")
    rules = page.get_by_test_id("fault-row")
    expect(rules).to_have_count(3)
    rules.filter(has_text="GetFleet").get_by_role("button", name=re.compile("^Delete fault")).click()
    expect(rules).to_have_count(2)
    listed = own_namespace.admin.ListFaults(admin_pb2.ListFaultsRequest(), metadata=own_namespace.metadata)
    assert sorted(f.method for f in listed.faults) == ["GetVehicle", "ListFleets"]
    page.get_by_role("button", name="Clear all faults").click()
    expect(rules).to_have_count(0)
    listed = own_namespace.admin.ListFaults(admin_pb2.ListFaultsRequest(), metadata=own_namespace.metadata)
    assert not listed.faults


def test_journal_filters_by_method_code_and_flow_id(own_namespace: Console, open_page: PageOpener) -> None:
    flow = (("x-flow-id", f"browser-{uuid.uuid4().hex[:12]}"),)
    own_namespace.api.ListFleets(v2.ListFleetsRequest(), metadata=own_namespace.metadata)
    own_namespace.api.GetFleet(v2.GetFleetRequest(fleet_id="hamburg"), metadata=own_namespace.metadata + flow)
    with pytest.raises(grpc.RpcError):
        own_namespace.api.GetFleet(v2.GetFleetRequest(fleet_id="nowhere"), metadata=own_namespace.metadata)
    page = open_page(own_namespace, "#/journal")
    calls = page.get_by_test_id("journal-row")
    expect(calls).to_have_count(3)
    page.get_by_label("Method").fill("GetFleet")
    page.get_by_role("button", name="Apply").click()
    expect(calls).to_have_count(2)
    page.get_by_label("Code").select_option(label="NOT_FOUND (5)")
    expect(calls).to_have_count(1)
    expect(calls.locator("[data-field=reason]")).to_have_text("FLEET_NOT_FOUND")
    page.get_by_label("Code").select_option("")
    page.get_by_label("Flow id").fill(flow[0][1])
    page.get_by_role("button", name="Apply").click()
    expect(calls).to_have_count(1)
    expect(calls.locator("[data-field=flow_id]")).to_have_text(flow[0][1])


def test_fleets_pages_through_many_fleets(own_namespace: Console, open_page: PageOpener) -> None:
    for n in range(20):
        fleet = v2.Fleet(
            id=f"extra-{n:02}", display_name=f"Extra {n}", city="Kiel", time_zone="Europe/Berlin"
        )
        own_namespace.admin.CreateFleet(
            admin_pb2.CreateFleetRequest(fleet=fleet), metadata=own_namespace.metadata
        )
    page = open_page(own_namespace, "#/fleets/hamburg")
    expect(page.get_by_test_id("fleet-row")).to_have_count(20)
    page.get_by_role("button", name="More fleets").click()
    expect(page.get_by_test_id("fleet-row")).to_have_count(22)
    expect(page.get_by_role("button", name="More fleets")).to_be_hidden()


def clock_now(console: Console) -> admin_pb2.GetClockResponse:
    response: admin_pb2.GetClockResponse = console.admin.GetClock(admin_pb2.GetClockRequest())
    return response


def test_the_clock_page_sets_advances_and_releases_the_clock(console: Console, open_page: PageOpener) -> None:
    page = open_page(console, "#/clock")
    try:
        page.get_by_label("Date and time (UTC)").fill("2030-01-02T03:04:05")
        page.get_by_role("button", name="Set clock").click()
        expect(page.get_by_test_id("clock-now")).to_have_text("2030-01-02 03:04:05Z")
        set_to = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        assert clock_now(console).virtual
        assert clock_now(console).now.ToDatetime(UTC) == set_to

        page.get_by_label("Amount").fill("90")
        page.get_by_label("Unit").select_option("minutes")
        page.get_by_role("button", name="Advance clock").click()
        expect(page.get_by_test_id("clock-now")).to_have_text("2030-01-02 04:34:05Z")
        assert clock_now(console).now.ToDatetime(UTC) == datetime(2030, 1, 2, 4, 34, 5, tzinfo=UTC)

        page.get_by_role("button", name="Use real clock").click()
        expect(page.get_by_test_id("clock-kind")).to_have_attribute("data-virtual", "false")
        assert not clock_now(console).virtual
    finally:
        console.admin.UseRealClock(admin_pb2.UseRealClockRequest())


def test_a_refused_command_shows_its_code_and_details(own_namespace: Console, open_page: PageOpener) -> None:
    page = open_page(own_namespace, f"#/vehicle/{ASLEEP}")
    expect(page.get_by_test_id("vehicle-state")).to_contain_text("ASLEEP")
    page.get_by_role("button", name="Honk").click()
    outcome = page.get_by_test_id("call-outcome")
    expect(outcome.get_by_test_id("status-code")).to_have_text("FAILED_PRECONDITION (9)")
    expect(outcome.locator("[data-detail=ErrorInfo] [data-field=reason]")).to_have_text("VEHICLE_ASLEEP")
    expect(outcome.locator("[data-detail=PreconditionFailure] td[data-field=type]")).to_have_text(
        "VEHICLE_STATE"
    )


def test_the_vehicle_page_changes_a_vehicle_through_the_admin_service(
    own_namespace: Console, open_page: PageOpener
) -> None:
    before = own_namespace.api.GetVehicle(
        v2.GetVehicleRequest(vehicle_id=ONLINE), metadata=own_namespace.metadata
    )
    locked = before.vehicle.lock_state == v2.LOCK_STATE_LOCKED
    wanted, shown = ("LOCK_STATE_UNLOCKED", "UNLOCKED") if locked else ("LOCK_STATE_LOCKED", "LOCKED")
    page = open_page(own_namespace, "#/vehicle")
    page.get_by_label("Vehicle id").fill(ONLINE)
    page.get_by_role("button", name="Show").click()
    lock = page.get_by_test_id("vehicle-state").locator("[data-field=lock]")
    expect(lock).to_have_text("LOCKED" if locked else "UNLOCKED")
    page.get_by_label("Lock state").select_option(wanted)
    page.get_by_role("button", name="Set lock state").click()
    expect(page.get_by_test_id("call-outcome")).to_contain_text("UpdateVehicle: OK")
    expect(lock).to_have_text(shown)
    expect(page.locator("[data-testid=vehicle-events] [data-kind=lock_changed]")).to_have_count(1)
    after = own_namespace.api.GetVehicle(
        v2.GetVehicleRequest(vehicle_id=ONLINE), metadata=own_namespace.metadata
    )
    assert v2.LockState.Name(after.vehicle.lock_state) == wanted


def test_the_namespace_picker_applies_to_every_call(own_namespace: Console, open_page: PageOpener) -> None:
    own_namespace.admin.DeleteFleet(
        admin_pb2.DeleteFleetRequest(fleet_id="hanover"), metadata=own_namespace.metadata
    )
    page = open_page(own_namespace, "#/fleets")
    expect(page.get_by_test_id("fleet-row")).to_have_count(1)
    page.get_by_label("Namespace").fill("")
    page.get_by_label("Namespace").press("Enter")
    expect(page.get_by_test_id("fleet-row")).to_have_count(2)


def test_the_report_lists_a_command_to_a_sleeping_vehicle(
    own_namespace: Console, open_page: PageOpener
) -> None:
    with pytest.raises(grpc.RpcError):
        own_namespace.api.HonkHorn(v2.HonkHornRequest(vehicle_id=ASLEEP), metadata=own_namespace.metadata)
    page = open_page(own_namespace, "#/report")
    finding = page.get_by_test_id("finding")
    expect(finding).to_have_count(1)
    expect(finding.locator("h3")).not_to_be_empty()
    finding.get_by_role("link").click()
    expect(page.get_by_role("dialog")).to_contain_text("HonkHorn")


def test_a_token_protected_console_asks_for_the_token(tmp_path: Path, open_page: PageOpener) -> None:
    with console_serving(tmp_path / "serve.log", "--admin-token", "secret") as console:
        page = open_page(console, "#/fleets")
        dialog = page.get_by_role("dialog", name="Admin token")
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        expect(page.get_by_test_id("status-code")).to_have_text("UNAUTHENTICATED (16)")

        page.get_by_role("button", name="Admin token…").click()
        dialog.get_by_label("Token").fill("wrong")
        dialog.get_by_role("button", name="Use token").click()
        expect(dialog.get_by_text("The emulator refused the token")).to_be_visible()
        dialog.get_by_label("Token").fill("secret")
        dialog.get_by_role("button", name="Use token").click()
        expect(page.get_by_test_id("fleet-row")).to_have_count(2)
        page.reload()  # the token is kept for the session
        expect(page.get_by_test_id("vehicle-row")).to_have_count(HAMBURG_VEHICLES)


def test_tab_reaches_every_nav_link(console: Console, open_page: PageOpener) -> None:
    page = open_page(console, "#/clock")
    page.reload()  # Tab from the top of the page, not from the title a navigation focuses
    wanted = set(nav_names())
    reached: set[str] = set()
    for _ in range(20):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "document.activeElement.closest('nav') ? document.activeElement.textContent : ''"
        )
        reached.add(focused)
        if wanted <= reached:
            break
    assert wanted <= reached, f"Tab reached only {reached & wanted}"
    page.keyboard.press("Enter")  # the last nav link: Report
    expect(page.get_by_role("heading", level=1)).to_have_text("Report")
    expect(page.get_by_role("heading", level=1)).to_be_focused()


def test_the_skip_link_moves_focus_to_the_page(console: Console, open_page: PageOpener) -> None:
    page = open_page(console, "#/faults")
    page.reload()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    expect(page.get_by_role("heading", level=1)).to_have_text("Faults")


def test_a_narrow_window_scrolls_no_page_sideways(console: Console, open_page: PageOpener) -> None:
    page = open_page(console, "#/fleets", viewport=NARROW)
    ready = {
        "Fleets": "[data-testid=vehicle-row]",
        "Vehicle": "#vehicle-id",
        "Events": "[data-testid=stream-state]",
        "Journal": "[data-testid=journal-table]",
        "Faults": "[data-testid=fault-form]",
        "Clock": "[data-testid=clock-now]:not(:empty)",
        "Report": "[data-testid=report] p",
    }
    for name in nav_names():
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.locator(ready[name]).first).to_be_visible()
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} is {overflow} px wider than a {NARROW['width']} px window"
    page.goto(f"/#/vehicle/{ONLINE}")
    expect(page.get_by_test_id("vehicle-state")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, from its IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_every_page_has_a_screenshot_of_1280_by_800() -> None:
    for name in nav_names():
        path = SCREENSHOTS / f"{name.lower()}.png"
        assert path.is_file(), f"no {path.relative_to(ROOT)}: run scripts/screenshots.py"
        assert png_size(path) == (1280, 800), f"{path.relative_to(ROOT)} is not 1280x800"
