/*
 * How values of the API read on the pages: gRPC status codes by name, enum values without their type's
 * prefix, timestamps and durations of proto3 JSON, battery and positions. Pure functions, no DOM.
 */

export const CODES = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/** `14` → `UNAVAILABLE (14)`. */
export function codeName(number) {
  const n = Number(number);
  return `${CODES[n] ?? "CODE"} (${n})`;
}

const PREFIXES = [
  "CONNECTIVITY_STATE_", "OPERATIONAL_STATUS_", "LOCK_STATE_", "CHARGING_STATE_", "AUTOMATION_LEVEL_",
  "DOOR_POSITION_", "DOOR_STATE_", "MISSION_STAGE_", "VEHICLE_COMMAND_",
];

/** `CONNECTIVITY_STATE_ONLINE` → `ONLINE`; values the protos do not know (numbers) stay as they are. */
export function enumLabel(value) {
  if (value === undefined || value === null) return "";
  const text = String(value);
  const prefix = PREFIXES.find((p) => text.startsWith(p));
  return prefix ? text.slice(prefix.length) : text;
}

/** An RFC 3339 timestamp as `2026-05-01 12:00:00Z` (the emulator's clock is UTC); "" when unset. */
export function time(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

/** The time of day of an RFC 3339 timestamp, to the millisecond: `12:00:00.250`. */
export function clockTime(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value ?? "") : date.toISOString().slice(11, 23);
}

/** A proto3 JSON duration (`"0.001500s"`) as `1.5 ms` or `2.00 s`. */
export function duration(value) {
  const seconds = Number.parseFloat(String(value ?? "0").replace(/s$/, ""));
  if (!Number.isFinite(seconds)) return String(value);
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}

/** A state of charge as `42.5 %`. */
export function percent(value) {
  return value === undefined ? "" : `${Number(value).toFixed(1)} %`;
}

/** A location as `53.55110, 9.99370`. */
export function position(location) {
  if (!location) return "";
  return `${Number(location.latitude).toFixed(5)}, ${Number(location.longitude).toFixed(5)}`;
}

/** The last part of a full method name: `/moia.fleet.state.v2.FleetStateService/GetVehicle` → `GetVehicle`. */
export function shortMethod(method) {
  return String(method ?? "").split("/").pop();
}

/** Sort key of vehicle labels: numeric labels in number order, then the others. */
export function byLabel(a, b) {
  return String(a.label).localeCompare(String(b.label), undefined, { numeric: true }) || a.id.localeCompare(b.id);
}

/** The RPCs of the emulated API, for the method fields of the Journal and Faults pages. */
export const API_METHODS = [
  "ListFleets", "GetFleet", "ListVehicles", "GetVehicle", "StreamVehicleEvents", "PollVehicleEvents",
  "SubscribeToVehicleStates", "WakeUpVehicle", "LockVehicle", "UnlockVehicle", "HonkHorn", "FlashLights",
  "UpdateVehicle",
];
