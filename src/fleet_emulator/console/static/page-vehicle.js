/*
 * Vehicle page (#/vehicle/<id>): one vehicle's full v2 state (kept live by SubscribeToVehicleStates), forms
 * that change it through the admin service's UpdateVehicle with an update mask, buttons for the v2
 * commands, the outcome of the last action (a refused one with its code and details), and the vehicle's
 * events of the last 15 minutes of the emulator's clock, then live ones, from its fleet's durable stream.
 */

import { call, stream } from "./api.js";
import { el, heading, labelled, pairs, section, show, tableWrap } from "./dom.js";
import { eventRow, eventTable } from "./events.js";
import { enumLabel, percent, position, time } from "./format.js";
import { renderStatus } from "./status.js";

const RECENT_MS = 15 * 60 * 1000;
const MAX_EVENTS = 50;
const COMMANDS = [
  ["WakeUpVehicle", "Wake up"],
  ["LockVehicle", "Lock"],
  ["UnlockVehicle", "Unlock"],
  ["HonkHorn", "Honk"],
  ["FlashLights", "Flash lights"],
];
const CONNECTIVITY = ["CONNECTIVITY_STATE_ONLINE", "CONNECTIVITY_STATE_ASLEEP", "CONNECTIVITY_STATE_OFFLINE"];
const STATUSES = [
  "OPERATIONAL_STATUS_AVAILABLE",
  "OPERATIONAL_STATUS_ON_MISSION",
  "OPERATIONAL_STATUS_CHARGING",
  "OPERATIONAL_STATUS_MAINTENANCE",
  "OPERATIONAL_STATUS_OUT_OF_SERVICE",
];
const LOCK_STATES = ["LOCK_STATE_LOCKED", "LOCK_STATE_UNLOCKED"];

function choose(id, values, current) {
  const options = values.map((v) => el("option", { value: v, selected: v === current }, enumLabel(v)));
  return el("select", { id }, options);
}

/** A number input showing `value` to `digits` decimals. */
function number(id, value, digits, attrs) {
  const shown = value === undefined ? "" : String(Number(Number(value).toFixed(digits)));
  return el("input", { id, type: "number", step: "any", required: true, value: shown, ...attrs });
}

function summary(v) {
  const battery = v.battery ?? {};
  const charge = `${percent(battery.state_of_charge_percent)}, ${Number(battery.range_km ?? 0).toFixed(1)} km`;
  return pairs([
    ["id", v.id],
    ["label", v.label],
    ["fleet", el("a", { href: `#/fleets/${encodeURIComponent(v.fleet_id)}` }, v.fleet_id)],
    ["connectivity", enumLabel(v.connectivity)],
    ["operational status", enumLabel(v.operational_status)],
    ["battery", `${charge}, ${enumLabel(battery.charging_state)}`],
    ["lock", enumLabel(v.lock_state)],
    ["position", position(v.location)],
    ["updated", time(v.update_time)],
    ["etag", el("code", {}, v.etag)],
  ]);
}

/** The admin changes: each form sets the paths of its update `mask` to the values of its controls. */
function changes(v) {
  return [
    {
      button: "Set connectivity",
      mask: "connectivity",
      controls: [["Connectivity", choose("set-connectivity", CONNECTIVITY, v.connectivity)]],
      values: ([c]) => ({ connectivity: c.value }),
    },
    {
      button: "Set status",
      mask: "operationalStatus",
      controls: [["Operational status", choose("set-status", STATUSES, v.operational_status)]],
      values: ([c]) => ({ operational_status: c.value }),
    },
    {
      button: "Set lock state",
      mask: "lockState",
      controls: [["Lock state", choose("set-lock", LOCK_STATES, v.lock_state)]],
      values: ([c]) => ({ lock_state: c.value }),
    },
    {
      button: "Set battery",
      mask: "battery.stateOfChargePercent",
      controls: [["Battery (%)", number("set-battery", v.battery?.state_of_charge_percent, 1, { min: 0, max: 100 })]],
      values: ([c]) => ({ battery: { state_of_charge_percent: c.valueAsNumber } }),
    },
    {
      button: "Set position",
      mask: "location.latitude,location.longitude",
      controls: [
        ["Latitude", number("set-latitude", v.location?.latitude, 6, { min: -90, max: 90 })],
        ["Longitude", number("set-longitude", v.location?.longitude, 6, { min: -180, max: 180 })],
      ],
      values: ([lat, lon]) => ({ location: { latitude: lat.valueAsNumber, longitude: lon.valueAsNumber } }),
    },
  ];
}

/** The forms of `changes`, calling the admin service's UpdateVehicle through `act`. */
function changeForms(v, act) {
  return changes(v).map(({ button, mask, controls, values }) => {
    const form = el(
      "form",
      { class: "inline" },
      controls.map(([label, control]) => labelled(label, control)),
      el("button", { type: "submit" }, button),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const vehicle = { id: v.id, ...values(controls.map(([, control]) => control)) };
      act("admin", "UpdateVehicle", { vehicle, update_mask: mask });
    });
    return form;
  });
}

function commandButtons(v, act) {
  const key = el("input", { id: "idempotency-key", maxlength: 200, autocomplete: "off" });
  const send = (method) => {
    const keyed = method === "WakeUpVehicle" ? {} : { idempotency_key: key.value };
    act("v2", method, { vehicle_id: v.id, ...keyed });
  };
  const buttons = COMMANDS.map(([method, label]) =>
    el("button", { type: "button", "data-command": method, on: { click: () => send(method) } }, label),
  );
  return [labelled("Idempotency key (optional)", key), el("div", { class: "actions" }, buttons)];
}

function outcome(method, answer) {
  if (answer.code !== "OK") return [el("p", {}, `${method} was refused:`), renderStatus(answer)];
  const result = answer.response.result;
  const done = result
    ? ` ${enumLabel(result.command)} executed, execution #${result.execution_count}, command id ${result.command_id}.`
    : "";
  return el(
    "div",
    { class: "status ok", "data-testid": "status", "data-code": "OK" },
    el("p", {}, el("strong", { "data-testid": "status-code" }, `${method}: OK.`), done),
  );
}

/** The fleet's events about the vehicle: the recent ones, then live ones, newest first. */
async function recentEvents(body, v, signal) {
  const fleet = await call("v2", "GetFleet", { fleet_id: v.fleet_id }, signal);
  if (fleet.code !== "OK") return fleet;
  const request = { event_id: fleet.response.fleet.vehicle_events_id };
  const clock = await call("admin", "GetClock", {}, signal);
  const position = await call("v2", "PollVehicleEvents", request, signal);
  if (clock.code === "OK" && position.code === "OK") {
    // From 15 minutes ago on the emulator's clock, or from the last event if it is older: an id the stream
    // has reached, so that the stream starts without a gap.
    const since = Date.parse(clock.response.now) - RECENT_MS;
    const last = position.response.message_id;
    request.last_message_id = Number(last.split("-")[0]) < since ? last : `${since}-0`;
  }
  const add = ({ event, message_id: id }) => {
    if (event?.vehicle_id !== v.id) return;
    body.prepend(eventRow(id, event));
    while (body.children.length > MAX_EVENTS) body.lastChild.remove();
  };
  const status = await stream("StreamVehicleEvents", request, add, signal);
  // The chosen time is past the stream's retention (MESSAGE_ID_EXPIRED): live events only.
  if (status.code !== "OUT_OF_RANGE") return status;
  return stream("StreamVehicleEvents", { event_id: request.event_id }, add, signal);
}

function lookup(argument) {
  const input = el("input", {
    id: "vehicle-id",
    class: "id-input",
    required: true,
    value: argument,
    autocomplete: "off",
    spellcheck: "false",
  });
  const form = el(
    "form",
    { class: "inline", role: "search" },
    labelled("Vehicle id", input),
    el("button", { type: "submit" }, "Show"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/vehicle/${encodeURIComponent(input.value.trim())}`;
  });
  return form;
}

async function showVehicle(root, id, signal) {
  const answer = await call("v2", "GetVehicle", { vehicle_id: id }, signal);
  if (signal.aborted) return;
  if (answer.code !== "OK") return root.append(renderStatus(answer));
  const v = answer.response.vehicle;
  const fields = el("div");
  const json = el("pre", { "data-testid": "vehicle-json" });
  const stateEnded = el("div");
  const result = el("div", { "data-testid": "call-outcome", role: "status" });
  const { table: events, body } = eventTable("vehicle-events");
  const eventsEnded = el("div");
  const draw = (vehicle) => {
    show(fields, summary(vehicle));
    json.textContent = JSON.stringify(vehicle, null, 2);
  };
  const act = async (service, method, request) => {
    show(result, el("p", {}, `${method}…`));
    show(result, outcome(method, await call(service, method, request, signal)));
  };
  draw(v);
  root.append(
    el(
      "div",
      { class: "split" },
      section(
        "state-title",
        `Vehicle ${v.label}`,
        el("div", { "data-testid": "vehicle-state" }, fields),
        el("details", {}, el("summary", {}, "Full state (JSON)"), json),
        stateEnded,
      ),
      section("commands-title", "Commands (v2)", commandButtons(v, act), el("h3", {}, "Last outcome"), result),
    ),
    section("change-title", "Change (admin UpdateVehicle)", el("div", { class: "forms" }, changeForms(v, act))),
    section("events-title", "Recent events", eventsEnded, tableWrap("Events of the vehicle", events)),
  );
  const live = { fleet_id: v.fleet_id, vehicle_ids: [v.id] };
  stream("SubscribeToVehicleStates", live, ({ vehicle }) => draw(vehicle), signal).then((status) => {
    if (!signal.aborted) show(stateEnded, el("p", {}, "The live state ended:"), renderStatus(status));
  });
  const status = await recentEvents(body, v, signal);
  if (!signal.aborted) show(eventsEnded, el("p", {}, "The event stream ended:"), renderStatus(status));
}

export default {
  title: "Vehicle",
  mount(root, { argument, signal }) {
    root.append(heading("Vehicle"), lookup(argument));
    if (argument) showVehicle(root, argument, signal);
  },
};
