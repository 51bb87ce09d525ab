/*
 * Report page (#/report): what each client of the namespace did that a well-behaved client does not
 * (GetClientReport): per client its findings, each with the advice and the calls that show it, linked to
 * the call in the Journal ("(gone)" when the journal no longer keeps it).
 */

import { call } from "./api.js";
import { el, heading, show, table, tableWrap } from "./dom.js";
import { shortMethod, time } from "./format.js";
import { renderStatus } from "./status.js";

function calls(finding) {
  const { table: list, body } = table(["Call", "Method", "Started", "Flow id", "Note"]);
  body.append(
    ...finding.calls.map((c) =>
      el(
        "tr",
        {},
        el("td", {}, Number(c.sequence) ? el("a", { href: `#/journal/${c.sequence}` }, `#${c.sequence}`) : "(gone)"),
        el("td", {}, shortMethod(c.method)),
        el("td", {}, time(c.start_time)),
        el("td", {}, el("code", {}, c.flow_id)),
        el("td", { class: "wrap" }, c.note),
      ),
    ),
  );
  return tableWrap(`Calls showing ${finding.practice}`, list);
}

function client(report) {
  return el(
    "section",
    { class: "card", "data-testid": "report-client", "data-client": report.client },
    el("h2", {}, "Client ", el("code", {}, report.client)),
    report.findings.map((finding) =>
      el(
        "article",
        { "data-testid": "finding", "data-practice": finding.practice },
        el("h3", {}, finding.practice),
        el("p", {}, finding.advice),
        calls(finding),
      ),
    ),
  );
}

export default {
  title: "Report",
  mount(root, { signal }) {
    const content = el("div", { "data-testid": "report" });

    async function load() {
      show(content, el("p", { class: "muted" }, "Reading the report…"));
      const answer = await call("admin", "GetClientReport", {}, signal);
      if (signal.aborted) return;
      if (answer.code !== "OK") return show(content, renderStatus(answer));
      const clients = answer.response.clients;
      const none = el("p", {}, "No client broke a practice in this namespace.");
      show(content, clients.length ? clients.map(client) : none);
    }

    root.append(
      heading("Report"),
      el("p", { class: "muted" }, "What each client of this namespace did that a well-behaved client does not."),
      el("div", { class: "toolbar" }, el("button", { type: "button", on: { click: load } }, "Refresh")),
      content,
    );
    load();
  },
};
