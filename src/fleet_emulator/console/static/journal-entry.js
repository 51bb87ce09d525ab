/*
 * One journal entry (emulator.admin.v1.JournalEntry) in full, for the Journal page's dialog: the call with
 * its ErrorInfo reason, its outcome as a status (with rich error details, should the entry carry them),
 * its headers as the server redacted them, its request, and for a stream the messages sent, their count
 * and the message id it resumed from.
 */

import { el, pairs } from "./dom.js";
import { codeName, duration, shortMethod, time } from "./format.js";
import { renderStatus } from "./status.js";

const STREAMS = new Set(["StreamVehicleEvents", "SubscribeToVehicleStates"]);

function json(value) {
  return el("pre", {}, JSON.stringify(value, null, 2));
}

function part(title, ...content) {
  return el("section", {}, el("h3", {}, title), content);
}

function outcome(entry) {
  if (!entry.finished) return el("p", {}, "Still running: the code and duration are not final.");
  return renderStatus(
    { codeNumber: entry.code, message: entry.status_message, flowId: entry.flow_id, details: entry.details ?? [] },
    { announce: false },
  );
}

function streamed(entry) {
  const messages = entry.messages || [];
  return part(
    "Stream",
    pairs([
      ["messages sent", String(entry.message_count ?? 0)],
      ["resumed from", entry.resumed_from || "(not resumed)"],
    ]),
    messages.length ? el("ol", { class: "messages" }, messages.map((m) => el("li", {}, json(m)))) : "",
  );
}

/** The content of the dialog for `entry`. */
export function entryDetail(entry) {
  const metadata = Object.entries(entry.metadata || {});
  return [
    part(
      "Call",
      pairs([
        ["method", entry.method],
        ["version", entry.version],
        ["started", time(entry.start_time)],
        ["duration", duration(entry.duration)],
        ["code", codeName(entry.code)],
        ["reason", entry.reason],
        ["flow id", entry.flow_id],
        ["client", entry.client],
        ["peer", entry.peer],
      ]),
    ),
    part("Outcome", outcome(entry)),
    part("Headers", metadata.length ? pairs(metadata) : el("p", {}, "None.")),
    part(
      "Request",
      entry.request_truncated &&
        el("p", { class: "warning" }, `Cut: the request had ${entry.request_size_bytes} bytes.`),
      json(entry.request ?? {}),
    ),
    STREAMS.has(shortMethod(entry.method)) && streamed(entry),
  ];
}
