/*
 * The one place that renders a gRPC status for people: its code, message and flow id, then each rich error
 * detail (google.rpc.ErrorInfo, BadRequest, RetryInfo, QuotaFailure, ResourceInfo, PreconditionFailure,
 * Help, RequestInfo, LocalizedMessage, DebugInfo) field by field; a detail of another type shows as JSON.
 */

import { el, field, pairs } from "./dom.js";
import { codeName, CODES } from "./format.js";

function rows(label, items, columns) {
  const head = el("tr", {}, columns.map(([title]) => el("th", { scope: "col" }, title)));
  const body = (items || []).map((item) =>
    el("tr", {}, columns.map(([, name]) => el("td", { "data-field": name }, String(field(item, name) ?? "")))),
  );
  return el("table", { class: "details-table", "aria-label": label }, el("thead", {}, head), el("tbody", {}, body));
}

function link(item) {
  const url = String(field(item, "url") ?? "");
  const text = field(item, "description") || url;
  return /^https?:\/\//.test(url) ? el("a", { href: url, rel: "noreferrer" }, text) : `${text} ${url}`;
}

const RENDERERS = {
  ErrorInfo: (d) => {
    const metadata = Object.entries(field(d, "metadata") || {});
    return pairs([
      ["reason", field(d, "reason")],
      ["domain", field(d, "domain")],
      ["metadata", metadata.length ? pairs(metadata) : ""],
    ]);
  },
  BadRequest: (d) =>
    rows("Field violations", field(d, "field_violations"), [
      ["field", "field"],
      ["description", "description"],
      ["reason", "reason"],
    ]),
  RetryInfo: (d) => pairs([["retry delay", field(d, "retry_delay")]]),
  QuotaFailure: (d) =>
    rows("Quota violations", field(d, "violations"), [
      ["subject", "subject"],
      ["description", "description"],
      ["quota id", "quota_id"],
      ["quota value", "quota_value"],
    ]),
  ResourceInfo: (d) =>
    pairs([
      ["resource type", field(d, "resource_type")],
      ["resource name", field(d, "resource_name")],
      ["owner", field(d, "owner")],
      ["description", field(d, "description")],
    ]),
  PreconditionFailure: (d) =>
    rows("Precondition violations", field(d, "violations"), [
      ["type", "type"],
      ["subject", "subject"],
      ["description", "description"],
    ]),
  Help: (d) => el("ul", {}, (field(d, "links") || []).map((item) => el("li", {}, link(item)))),
  RequestInfo: (d) =>
    pairs([
      ["request id", field(d, "request_id")],
      ["serving data", field(d, "serving_data")],
    ]),
  LocalizedMessage: (d) =>
    pairs([
      ["locale", field(d, "locale")],
      ["message", field(d, "message")],
    ]),
  DebugInfo: (d) =>
    pairs([
      ["detail", field(d, "detail")],
      ["stack", (field(d, "stack_entries") || []).join("\n")],
    ]),
};

/** One detail (`{"@type": "type.googleapis.com/google.rpc.ErrorInfo", ...}`) as a titled section. */
function renderDetail(detail) {
  const type = String(detail["@type"] ?? "");
  const name = type.split(".").pop();
  const render = RENDERERS[name];
  const body = render ? render(detail) : el("pre", {}, JSON.stringify(detail, null, 2));
  return el("section", { class: "detail", "data-detail": name }, el("h3", {}, name || "detail"), body);
}

/**
 * A status `{code, codeNumber, message, details, flowId}` of a console answer (or a journal entry's
 * outcome put in that shape) as an element; `role="alert"` when `announce` is set.
 */
export function renderStatus(status, { announce = true } = {}) {
  const number = status.codeNumber ?? CODES.indexOf(status.code);
  const ok = Number(number) === 0;
  return el(
    "div",
    {
      class: ok ? "status ok" : "status error",
      role: announce && !ok ? "alert" : undefined,
      "data-testid": "status",
      "data-code": CODES[number] ?? status.code,
    },
    el("p", {}, el("strong", { "data-testid": "status-code" }, codeName(number)), ` ${status.message ?? ""}`),
    status.flowId ? el("p", { class: "muted" }, "Flow id: ", el("code", {}, status.flowId)) : "",
    (status.details || []).map(renderDetail),
  );
}
