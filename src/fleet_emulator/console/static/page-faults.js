/*
 * Faults page (#/faults): the namespace's fault rules with their hits (ListFaults, refreshed every 2 s), a
 * form adding one (CreateFault: which calls it matches, then its action: fail with a code, add latency,
 * break or stall a stream after N messages, or a poor connection for commands), and deleting one or all.
 */

import { call, every } from "./api.js";
import { el, heading, labelled, section, show, table, tableWrap } from "./dom.js";
import { API_METHODS, codeName, CODES } from "./format.js";
import { renderStatus } from "./status.js";

const COLUMNS = ["Id", "Method", "Fleet", "Vehicle", "Times", "Probability", "Action", "Hits", "Actions"];
const ALL_CODES = CODES.map((_, n) => n).slice(1);
const UNAVAILABLE = 14;
const DEADLINE_EXCEEDED = 4;

function codeSelect(id, codes, chosen) {
  const options = codes.map((n) => el("option", { value: n, selected: n === chosen }, codeName(n)));
  return el("select", { id }, options);
}

function number(id, value, attrs = {}) {
  return el("input", { id, type: "number", min: 0, step: 1, required: true, value, ...attrs });
}

function text(id, attrs = {}) {
  return el("input", { id, autocomplete: "off", spellcheck: "false", ...attrs });
}

/** The actions of a rule (the oneof of Fault): a legend, labelled fields, and their message. */
function actions() {
  const failCode = codeSelect("fail-code", ALL_CODES, UNAVAILABLE);
  const failMessage = text("fail-message");
  const failReason = text("fail-reason", { placeholder: "FAULT_INJECTED", pattern: "[A-Z][A-Z0-9_]*" });
  const delay = number("latency-seconds", 1, { step: "any" });
  const breakAfter = number("break-after", 1);
  const breakCode = codeSelect("break-code", ALL_CODES, UNAVAILABLE);
  const breakMessage = text("break-message");
  const stallAfter = number("stall-after", 1);
  const executed = el("input", { id: "poor-executed", type: "checkbox" });
  const poorCode = codeSelect("poor-code", [DEADLINE_EXCEEDED, UNAVAILABLE], DEADLINE_EXCEEDED);
  return {
    fail: {
      legend: "Fail with a code",
      fields: [labelled("Code", failCode), labelled("Message", failMessage), labelled("Reason", failReason)],
      read: () => ({ code: Number(failCode.value), message: failMessage.value, reason: failReason.value }),
    },
    latency: {
      legend: "Add latency",
      fields: [labelled("Delay (seconds)", delay)],
      read: () => ({ delay: `${delay.valueAsNumber}s` }),
    },
    break_stream: {
      legend: "Break a stream",
      fields: [labelled("After messages", breakAfter), labelled("Code", breakCode), labelled("Message", breakMessage)],
      read: () => ({
        after_messages: breakAfter.valueAsNumber,
        code: Number(breakCode.value),
        message: breakMessage.value,
      }),
    },
    stall_stream: {
      legend: "Stall a stream",
      fields: [labelled("After messages", stallAfter)],
      read: () => ({ after_messages: stallAfter.valueAsNumber }),
    },
    poor_connection: {
      legend: "Poor connection (commands)",
      fields: [
        el("div", { class: "check" }, executed, el("label", { for: "poor-executed" }, "The command runs")),
        labelled("Code", poorCode),
      ],
      read: () => ({ executed: executed.checked, code: Number(poorCode.value) }),
    },
  };
}

function addForm(add) {
  const method = text("fault-method", { list: "fault-methods", required: true, value: "GetVehicle" });
  const fleet = text("fault-fleet");
  const vehicle = text("fault-vehicle");
  const times = number("fault-times", 0);
  const probability = number("fault-probability", 0, { max: 1, step: "any", required: false });
  const seed = number("fault-seed", 0, { min: null, required: false });
  const kinds = actions();
  const kind = el(
    "select",
    { id: "fault-action" },
    Object.entries(kinds).map(([name, { legend }]) => el("option", { value: name }, legend)),
  );
  // Only the chosen action's fields show, and only they are checked and sent (a disabled fieldset is not).
  const sets = Object.entries(kinds).map(([name, { legend, fields }]) =>
    el("fieldset", { class: "inline", "data-action": name }, el("legend", {}, legend), fields),
  );
  const pick = () => {
    for (const set of sets) set.hidden = set.disabled = set.dataset.action !== kind.value;
  };
  kind.addEventListener("change", pick);
  pick();
  const form = el(
    "form",
    { "data-testid": "fault-form" },
    el(
      "div",
      { class: "inline" },
      labelled("Method (name, full name or *)", method),
      el("datalist", { id: "fault-methods" }, ["*", ...API_METHODS].map((m) => el("option", { value: m }))),
      labelled("Fleet id (optional)", fleet),
      labelled("Vehicle id (optional)", vehicle),
      labelled("Times (0: until deleted)", times),
      labelled("Probability (0: always)", probability),
      labelled("Seed", seed),
      labelled("Action", kind),
    ),
    sets,
    el("button", { type: "submit" }, "Add fault"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    add({
      method: method.value.trim(),
      fleet_id: fleet.value.trim(),
      vehicle_id: vehicle.value.trim(),
      times: times.valueAsNumber,
      probability: probability.valueAsNumber || 0,
      seed: String(seed.valueAsNumber || 0),
      [kind.value]: kinds[kind.value].read(),
    });
  });
  return section("add-fault-title", "Add a fault rule", form);
}

function describe(fault) {
  const { fail, latency, break_stream: broken, stall_stream: stalled, poor_connection: poor } = fault;
  if (fail) return `fail: ${codeName(fail.code)} ${fail.reason || "FAULT_INJECTED"} ${fail.message}`;
  if (latency) return `latency: ${latency.delay}`;
  if (broken) return `break stream after ${broken.after_messages}: ${codeName(broken.code)}`;
  if (stalled) return `stall stream after ${stalled.after_messages}`;
  if (poor) {
    const ran = poor.executed ? "runs" : "does not run";
    return `poor connection: the command ${ran}, ${codeName(poor.code || DEADLINE_EXCEEDED)}`;
  }
  return "(an action this console does not know)";
}

function faultRow(f, remove) {
  const label = `Delete fault ${f.id}`;
  const button = el("button", { type: "button", "aria-label": label, on: { click: remove } }, "Delete");
  return el(
    "tr",
    { "data-testid": "fault-row", "data-fault-id": f.id, "data-method": f.method },
    el("td", {}, el("code", {}, f.id)),
    el("td", {}, f.method),
    el("td", {}, f.fleet_id),
    el("td", {}, f.vehicle_id),
    el("td", { class: "number" }, f.times || "until deleted"),
    el("td", { class: "number" }, f.probability || "always"),
    el("td", { class: "wrap", "data-field": "action" }, describe(f)),
    el("td", { class: "number", "data-field": "hits" }, f.hits),
    el("td", {}, button),
  );
}

export default {
  title: "Faults",
  mount(root, { signal }) {
    const { table: list, body } = table(COLUMNS, { "data-testid": "fault-table" });
    const rules = tableWrap("Fault rules", list);
    const outcome = el("div", { role: "status", "data-testid": "fault-outcome" });
    const empty = el("p", { class: "muted" });
    let shown = ""; // the rules on display as JSON: the table is drawn again only when they change

    async function refresh() {
      const answer = await call("admin", "ListFaults", {}, signal);
      if (signal.aborted) return;
      if (answer.code !== "OK") return show(outcome, renderStatus(answer));
      const faults = answer.response.faults;
      if (JSON.stringify(faults) === shown) return;
      shown = JSON.stringify(faults);
      show(empty, faults.length ? "" : "No fault rules: every call is answered as usual.");
      rules.hidden = !faults.length;
      body.replaceChildren(...faults.map((f) => faultRow(f, () => act("DeleteFault", { fault_id: f.id }))));
    }

    async function act(method, request, done = () => `${method}: OK.`) {
      const answer = await call("admin", method, request, signal);
      show(outcome, answer.code === "OK" ? el("p", {}, done(answer.response)) : renderStatus(answer));
      await refresh();
    }

    const clear = () => act("ClearFaults", {}, (r) => `Deleted ${r.deleted} rules.`);
    root.append(
      heading("Faults"),
      addForm((fault) => act("CreateFault", { fault }, (r) => `Added fault ${r.fault.id}.`)),
      outcome,
      section(
        "rules-title",
        "Rules",
        el("div", { class: "toolbar" }, el("button", { type: "button", on: { click: clear } }, "Clear all faults")),
        empty,
        rules,
      ),
    );
    refresh();
    every(2000, refresh, signal);
  },
};
