/*
 * Vehicle events as table rows, shared by the Events and Vehicle pages: the kind of an event is the name of
 * its `change` field, summarised in a few words; kinds this console does not know show their name only, as
 * the API asks clients to treat them.
 */

import { el, table } from "./dom.js";
import { enumLabel, percent, position, time } from "./format.js";

const SUMMARIES = {
  connectivity_changed: (c) => `${enumLabel(c.previous)} → ${enumLabel(c.current)}`,
  position_changed: (c) => position(c.location),
  doors_changed: (c) => (c.doors || []).map((d) => `${enumLabel(d.position)} ${enumLabel(d.state)}`).join(", "),
  lock_changed: (c) => enumLabel(c.lock_state),
  battery_changed: (c) => `${percent(c.state_of_charge_percent)}, ${Number(c.range_km).toFixed(0)} km`,
  charging_changed: (c) => enumLabel(c.charging_state),
  operational_status_changed: (c) => `${enumLabel(c.previous)} → ${enumLabel(c.current)}`,
  mission_progressed: (c) => `${c.mission_id} ${enumLabel(c.stage)}`,
  command_executed: (c) => `${enumLabel(c.result?.command)} #${c.result?.execution_count}`,
};
const ENVELOPE = new Set(["id", "vehicle_id", "fleet_id", "occur_time", "publish_time", "flow_id"]);

/** The name of the event's `change` (`battery_changed`), or "" for an envelope without one. */
function eventKind(event) {
  return Object.keys(event).find((name) => !ENVELOPE.has(name)) ?? "";
}

/** The columns of `eventRow`, as a table with its body. */
export function eventTable(label) {
  return table(["Message id", "Kind", "Vehicle", "Occurred", "Flow id", "Change"], { "data-testid": label });
}

/** One table row of an event and the message id it came with. */
export function eventRow(messageId, event) {
  const kind = eventKind(event);
  const summary = SUMMARIES[kind];
  return el(
    "tr",
    { "data-testid": "event-row", "data-kind": kind, "data-message-id": messageId },
    el("td", {}, el("code", {}, messageId)),
    el("td", { "data-field": "kind" }, kind || "(none)"),
    el("td", {}, el("a", { href: `#/vehicle/${encodeURIComponent(event.vehicle_id)}` }, event.vehicle_id)),
    el("td", {}, time(event.occur_time)),
    el("td", { "data-field": "flow_id" }, el("code", {}, event.flow_id)),
    el("td", {}, summary ? summary(event[kind]) : ""),
  );
}
