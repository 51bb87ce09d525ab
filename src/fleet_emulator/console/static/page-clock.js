/*
 * Clock page (#/clock): the emulator's clock (GetClock, read every second), shared by all namespaces:
 * whether it is real or virtual and its time; set it to a UTC date and time (SetClock), advance it by an
 * amount (AdvanceClock), or go back to real time (UseRealClock).
 */

import { call, every } from "./api.js";
import { el, heading, labelled, section, show } from "./dom.js";
import { time } from "./format.js";
import { renderStatus } from "./status.js";

const UNITS = [
  ["seconds", 1],
  ["minutes", 60],
  ["hours", 3600],
  ["days", 86400],
];

function form(id, title, controls, button, submit) {
  const f = el("form", { class: "inline" }, controls, el("button", { type: "submit" }, button));
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  return section(id, title, f);
}

/** The value of a datetime-local input (`2030-01-02T03:04` or with seconds) as a UTC timestamp. */
function utc(value) {
  return `${value.length === 16 ? `${value}:00` : value}Z`;
}

export default {
  title: "Clock",
  mount(root, { signal }) {
    const now = el("p", { class: "clock-now", "data-testid": "clock-now" });
    const kind = el("p", { "data-testid": "clock-kind" });
    const outcome = el("div", { role: "status", "data-testid": "clock-outcome" });
    const at = el("input", { id: "clock-set", type: "datetime-local", step: 1, required: true });
    const amount = el("input", { id: "clock-amount", type: "number", min: 0, step: "any", required: true, value: 1 });
    const unit = el(
      "select",
      { id: "clock-unit" },
      UNITS.map(([name, seconds]) => el("option", { value: seconds, selected: name === "hours" }, name)),
    );

    async function read() {
      const answer = await call("admin", "GetClock", {}, signal);
      if (signal.aborted) return;
      if (answer.code !== "OK") return show(outcome, renderStatus(answer));
      const { now: current, virtual } = answer.response;
      show(now, time(current));
      kind.dataset.virtual = String(virtual);
      show(kind, virtual ? "Virtual: it moves only when set or advanced." : "Real time.");
      if (!at.value) at.value = current.slice(0, 19);
    }

    async function act(method, request) {
      const answer = await call("admin", method, request, signal);
      const done = answer.code === "OK" && el("p", {}, `${method}: the clock is at ${time(answer.response.now)}.`);
      show(outcome, done || renderStatus(answer));
      await read();
    }

    const seconds = () => (amount.valueAsNumber * Number(unit.value)).toFixed(3);
    root.append(
      heading("Clock"),
      el("p", { class: "muted" }, "One clock serves all namespaces. Times are UTC."),
      el("section", { class: "card", "aria-label": "Now" }, now, kind),
      outcome,
      form("set-title", "Set", labelled("Date and time (UTC)", at), "Set clock", () =>
        act("SetClock", { time: utc(at.value) }),
      ),
      form("advance-title", "Advance", [labelled("Amount", amount), labelled("Unit", unit)], "Advance clock", () =>
        act("AdvanceClock", { by: `${seconds()}s` }),
      ),
      section(
        "real-title",
        "Real time",
        el("button", { type: "button", on: { click: () => act("UseRealClock", {}) } }, "Use real clock"),
      ),
    );
    read();
    every(1000, read, signal);
  },
};
