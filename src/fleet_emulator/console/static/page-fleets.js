/*
 * Fleets page (#/fleets/<fleet id>): the namespace's fleets page by page (ListFleets with page tokens), and
 * for the selected fleet (the first one by default) its vehicles as a table and a map, both kept current
 * by SubscribeToVehicleStates without reloading.
 */

import { call, stream } from "./api.js";
import { el, heading, say, section, show, table, tableWrap } from "./dom.js";
import { byLabel, enumLabel, percent, time } from "./format.js";
import { fleetMap } from "./map.js";
import { renderStatus } from "./status.js";

const PAGE_SIZE = 20;
const COLUMNS = ["Label", "Connectivity", "Status", "Battery", "Lock", "Last update"];

/** The fleets table, marking `selected`; resolves with the fleets of its first page. */
async function fleetList(root, selected, signal) {
  const columns = ["Fleet", "Name", "City", "Vehicles", "Event stream"];
  const { table: list, body } = table(columns, { "data-testid": "fleet-table" });
  const more = el("button", { type: "button", hidden: true }, "More fleets");
  const problem = el("div");
  let token = "";

  async function load() {
    const answer = await call("v2", "ListFleets", { page_size: PAGE_SIZE, page_token: token }, signal);
    if (answer.code !== "OK") {
      show(problem, renderStatus(answer));
      return [];
    }
    for (const fleet of answer.response.fleets) {
      const current = fleet.id === selected && "true";
      body.append(
        el(
          "tr",
          { "data-testid": "fleet-row", "data-fleet-id": fleet.id, "aria-current": current },
          el("td", {}, el("a", { href: `#/fleets/${encodeURIComponent(fleet.id)}` }, fleet.id)),
          el("td", {}, fleet.display_name),
          el("td", {}, fleet.city),
          el("td", { class: "number", "data-field": "vehicle_count" }, fleet.vehicle_count),
          el("td", {}, el("code", {}, fleet.vehicle_events_id)),
        ),
      );
    }
    token = answer.response.next_page_token;
    more.hidden = !token;
    return answer.response.fleets;
  }

  more.addEventListener("click", load);
  root.append(section("fleets-title", "Fleets", tableWrap("Fleets", list), more, problem));
  return load();
}

/** A table row of a vehicle whose cells `update(vehicle)` sets in place (a focused link keeps its focus). */
function vehicleRow(id) {
  const link = el("a", { href: `#/vehicle/${encodeURIComponent(id)}` });
  const badge = el("span");
  const cell = (name, ...content) => el("td", { "data-field": name }, content);
  const [status, battery, lock, updated] = ["operational_status", "battery", "lock_state", "update_time"].map(
    (name) => cell(name),
  );
  battery.className = "number";
  const row = el(
    "tr",
    { "data-testid": "vehicle-row", "data-vehicle-id": id },
    cell("label", link),
    cell("connectivity", badge),
    status,
    battery,
    lock,
    updated,
  );
  const update = (v) => {
    link.textContent = v.label || v.id;
    badge.textContent = enumLabel(v.connectivity);
    badge.className = `badge state-${badge.textContent.toLowerCase()}`;
    status.textContent = enumLabel(v.operational_status);
    battery.textContent = percent(v.battery?.state_of_charge_percent);
    lock.textContent = enumLabel(v.lock_state);
    updated.textContent = time(v.update_time);
  };
  return { row, update };
}

/** The live table and map of one fleet's vehicles. */
function liveFleet(root, fleetId, signal) {
  const { table: grid, body } = table(COLUMNS, { "data-testid": "vehicle-table" });
  const map = fleetMap(`Positions of the vehicles of ${fleetId}`);
  const state = el("p", { class: "live", "data-testid": "live-status", role: "status" }, "Connecting…");
  const ended = el("div");
  const vehicles = new Map(); // id → latest state
  const rows = new Map(); // id → its row
  const changed = new Set(); // ids whose row is behind their state
  let drawing = false;

  function draw() {
    drawing = false;
    for (const id of changed) {
      if (!rows.has(id)) rows.set(id, vehicleRow(id));
      rows.get(id).update(vehicles.get(id));
    }
    changed.clear();
    const sorted = [...vehicles.values()].sort(byLabel);
    const order = sorted.map((v) => rows.get(v.id).row);
    if (order.some((row, i) => body.children[i] !== row)) body.replaceChildren(...order);
    map.update(sorted);
    say(state, `Live: ${vehicles.size} vehicles`);
  }

  function receive({ vehicle }) {
    vehicles.set(vehicle.id, vehicle);
    changed.add(vehicle.id);
    if (drawing) return;
    drawing = true;
    requestAnimationFrame(draw);
  }

  async function follow() {
    show(ended);
    vehicles.clear();
    const status = await stream("SubscribeToVehicleStates", { fleet_id: fleetId }, receive, signal);
    if (signal.aborted) return;
    say(state, "The live states ended.");
    show(ended, renderStatus(status), el("button", { type: "button", on: { click: follow } }, "Reconnect"));
  }

  root.append(
    section(
      "vehicles-title",
      ["Vehicles of ", el("code", {}, fleetId)],
      state,
      ended,
      el("div", { class: "split" }, tableWrap(`Vehicles of ${fleetId}`, grid), map.element),
    ),
  );
  follow();
}

export default {
  title: "Fleets",
  async mount(root, { argument, signal }) {
    root.append(heading("Fleets"));
    const fleets = await fleetList(root, argument, signal);
    const fleetId = argument || fleets[0]?.id;
    if (!fleetId || signal.aborted) return;
    if (!argument) root.querySelector("[data-testid=fleet-row]")?.setAttribute("aria-current", "true");
    liveFleet(root, fleetId, signal);
  },
};
