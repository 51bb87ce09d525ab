/*
 * Journal page (#/journal, #/journal/<sequence> opens that call): the calls clients made to the emulated
 * API in the namespace (ListJournalEntries), newest first, filtered by method, code and flow id, refreshed
 * every 2 s while "Auto-refresh" is on. The journal is read incrementally by sequence; calls still running
 * (open streams) are read again until they finish. A call's button opens it in full in a dialog.
 */

import { call, every } from "./api.js";
import { el, heading, labelled, say, show, table, tableWrap } from "./dom.js";
import { API_METHODS, clockTime, CODES, duration, shortMethod, time } from "./format.js";
import { entryDetail } from "./journal-entry.js";
import { renderStatus } from "./status.js";

const PAGE_SIZE = 1000;
const MAX_PAGES = 5; // per refresh: a large journal is caught up with over a few refreshes
const KEEP = 500;
const COLUMNS = ["Call", "Started", "Method", "Version", "Code", "Reason", "Flow id", "Duration", "Client"];

function filterForm(apply) {
  const method = el("input", { id: "journal-method", list: "journal-methods", autocomplete: "off" });
  const code = el(
    "select",
    { id: "journal-code" },
    el("option", { value: "" }, "any"),
    CODES.map((name, n) => el("option", { value: n }, `${name} (${n})`)),
  );
  const flow = el("input", { id: "journal-flow", autocomplete: "off", spellcheck: "false" });
  const form = el(
    "form",
    { class: "toolbar", "aria-label": "Filters" },
    labelled("Method", method),
    el("datalist", { id: "journal-methods" }, API_METHODS.map((m) => el("option", { value: m }))),
    labelled("Code", code),
    labelled("Flow id", flow),
    el("button", { type: "submit" }, "Apply"),
  );
  const filters = () => {
    const request = { method: method.value.trim(), flow_id: flow.value.trim() };
    if (code.value !== "") request.code = Number(code.value);
    return request;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    apply(filters());
  });
  code.addEventListener("change", () => apply(filters()));
  return form;
}

/** The dialog showing one entry in full; its URL is #/journal/<sequence> while it is open. */
function entryDialog(signal) {
  const title = el("h2", { id: "journal-dialog-title" });
  const content = el("div", { "data-testid": "journal-detail" });
  const close = el("button", { type: "submit" }, "Close");
  const dialog = el(
    "dialog",
    { id: "journal-dialog", class: "wide", "aria-labelledby": "journal-dialog-title" },
    el("form", { method: "dialog" }, el("div", { class: "dialog-head" }, title, close), content),
  );
  dialog.addEventListener("close", () => signal.aborted || history.replaceState(null, "", "#/journal"));
  const open = (entry) => {
    show(title, `Call ${entry.sequence}: ${shortMethod(entry.method)}`);
    show(content, entryDetail(entry));
    history.replaceState(null, "", `#/journal/${entry.sequence}`);
    if (!dialog.open) dialog.showModal();
    close.focus();
  };
  return { dialog, open };
}

function fillRow(row, entry, open) {
  const code = entry.finished ? (CODES[entry.code] ?? String(entry.code)) : "running";
  row.dataset.code = code;
  row.dataset.method = shortMethod(entry.method);
  const label = `#${entry.sequence}`;
  const button = el("button", { type: "button", class: "link", on: { click: () => open(entry) } }, label);
  row.replaceChildren(
    el("td", {}, button),
    el("td", { title: time(entry.start_time) }, clockTime(entry.start_time)),
    el("td", { "data-field": "method" }, shortMethod(entry.method)),
    el("td", {}, entry.version),
    el("td", { "data-field": "code" }, el("span", { class: `badge code-${code.toLowerCase()}` }, code)),
    el("td", { "data-field": "reason" }, entry.reason),
    el("td", { "data-field": "flow_id" }, el("code", {}, entry.flow_id)),
    el("td", { class: "number" }, entry.finished ? duration(entry.duration) : ""),
    el("td", {}, entry.client),
  );
}

export default {
  title: "Journal",
  mount(root, { argument, signal }) {
    const entries = new Map(); // sequence → entry, as last read
    const rows = new Map(); // sequence → {row, entry it shows}
    const problem = el("div");
    const auto = el("input", { id: "journal-auto", type: "checkbox", checked: true });
    const { table: list, body } = table(COLUMNS, { "data-testid": "journal-table" });
    const count = el("p", { class: "muted", role: "status" });
    const { dialog, open } = entryDialog(signal);
    let filters = {};
    let last = 0;
    let generation = 0; // counts filter changes: a refresh begun before one drops what it read

    function keep(entry) {
      const sequence = Number(entry.sequence);
      if (JSON.stringify(entries.get(sequence)) !== JSON.stringify(entry)) entries.set(sequence, entry);
    }

    async function refresh() {
      const mine = generation;
      const running = [...entries.values()].filter((e) => !e.finished).map((e) => Number(e.sequence) - 1);
      let after = Math.min(last, ...running);
      for (let page = 0; page < MAX_PAGES; page += 1) {
        const request = { ...filters, after_sequence: after, page_size: PAGE_SIZE };
        const answer = await call("admin", "ListJournalEntries", request, signal);
        if (signal.aborted || mine !== generation) return;
        if (answer.code !== "OK") return show(problem, renderStatus(answer));
        show(problem);
        answer.response.entries.forEach(keep);
        after = Number(answer.response.entries.at(-1)?.sequence ?? after);
        last = Math.max(last, after);
        if (answer.response.entries.length < PAGE_SIZE) break;
      }
      draw();
    }

    function draw() {
      const newest = [...entries.keys()].sort((a, b) => b - a);
      for (const old of newest.splice(KEEP)) {
        entries.delete(old);
        rows.delete(old);
      }
      for (const sequence of newest) {
        if (!rows.has(sequence)) {
          rows.set(sequence, { row: el("tr", { "data-testid": "journal-row", "data-sequence": sequence }) });
        }
        const shown = rows.get(sequence);
        if (shown.entry !== entries.get(sequence)) {
          shown.entry = entries.get(sequence);
          fillRow(shown.row, shown.entry, open);
        }
      }
      const order = newest.map((s) => rows.get(s).row);
      const moved = order.length !== body.children.length || order.some((row, i) => body.children[i] !== row);
      if (moved) body.replaceChildren(...order);
      say(count, `${newest.length} calls shown.`);
    }

    function apply(chosen) {
      filters = chosen;
      generation += 1;
      last = 0;
      entries.clear();
      rows.clear();
      body.replaceChildren();
      refresh();
    }

    async function openSequence(sequence) {
      const request = { after_sequence: Number(sequence) - 1, page_size: 1 };
      const answer = await call("admin", "ListJournalEntries", request, signal);
      const entry = answer.response?.entries.find((e) => String(e.sequence) === String(sequence));
      if (entry) open(entry);
      else if (answer.code !== "OK") show(problem, renderStatus(answer));
    }

    async function clear() {
      const answer = await call("admin", "ClearJournal", {}, signal);
      if (answer.code !== "OK") return show(problem, renderStatus(answer));
      apply(filters);
    }

    root.append(
      heading("Journal"),
      el(
        "p",
        { class: "muted" },
        "The calls clients made to the emulated API in this namespace (the console's own are not journaled).",
      ),
      filterForm(apply),
      el(
        "div",
        { class: "toolbar" },
        el("button", { type: "button", on: { click: refresh } }, "Refresh"),
        el("div", { class: "check" }, auto, el("label", { for: "journal-auto" }, "Auto-refresh every 2 s")),
        el("button", { type: "button", on: { click: clear } }, "Clear journal"),
      ),
      problem,
      count,
      tableWrap("Journal", list),
      dialog,
    );
    refresh();
    every(2000, refresh, signal, () => auto.checked);
    if (argument) openSequence(argument);
  },
};
