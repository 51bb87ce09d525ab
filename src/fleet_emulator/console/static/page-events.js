/*
 * Events page (#/events/<fleet id>): a fleet's durable event stream, live (StreamVehicleEvents on the
 * fleet's vehicle_events_id). Pause stops reading; Resume reads again after the message id in the field
 * (the last one received, or one typed in; empty: from now), so an expired or unknown id shows its
 * OUT_OF_RANGE details. Poll asks PollVehicleEvents for the events after that id instead.
 */

import { allFleets, call, stream } from "./api.js";
import { el, heading, labelled, say, section, show, tableWrap } from "./dom.js";
import { eventRow, eventTable } from "./events.js";
import { renderStatus } from "./status.js";

const MAX_ROWS = 200;

function fleetPicker(fleets, selected) {
  const select = el(
    "select",
    { id: "events-fleet" },
    fleets.map((f) => el("option", { value: f.id, selected: f.id === selected }, `${f.display_name} (${f.id})`)),
  );
  select.addEventListener("change", () => (location.hash = `#/events/${encodeURIComponent(select.value)}`));
  return el("form", { class: "inline", on: { submit: (e) => e.preventDefault() } }, labelled("Fleet", select));
}

function follow(root, fleet, signal) {
  const eventId = fleet.vehicle_events_id;
  const state = el("p", { class: "live", role: "status", "data-testid": "stream-state" });
  const ended = el("div", { "data-testid": "stream-end" });
  const from = el("input", {
    id: "resume-from",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "empty: from now",
  });
  const pause = el("button", { type: "button" }, "Pause");
  const polled = el("div", { "data-testid": "poll-result" });
  const { table: live, body } = eventTable("event-table");
  let reading = null;

  const after = () => {
    const request = { event_id: eventId };
    if (from.value.trim()) request.last_message_id = from.value.trim();
    return request;
  };

  async function read() {
    reading?.abort();
    reading = new AbortController();
    const mine = reading;
    const request = after();
    show(ended);
    say(state, `Live: ${eventId}${request.last_message_id ? `, after ${request.last_message_id}` : ""}`);
    pause.disabled = false;
    const add = ({ event, message_id: id }) => {
      from.value = id;
      if (!event) return;
      body.prepend(eventRow(id, event));
      while (body.children.length > MAX_ROWS) body.lastChild.remove();
    };
    const status = await stream("StreamVehicleEvents", request, add, AbortSignal.any([signal, mine.signal]));
    if (mine.signal.aborted) return;
    pause.disabled = true;
    say(state, "The stream ended.");
    show(ended, renderStatus(status));
  }

  async function poll() {
    const answer = await call("v2", "PollVehicleEvents", after(), signal);
    if (answer.code !== "OK") return show(polled, renderStatus(answer));
    const { events, message_id: position } = answer.response;
    const { table: result, body: rows } = eventTable("poll-table");
    rows.append(...events.map((event) => eventRow("", event)));
    from.value = position;
    show(
      polled,
      el("p", {}, `${events.length} events; position ${position}.`),
      events.length ? tableWrap("Polled events", result) : "",
    );
  }

  pause.addEventListener("click", () => {
    reading?.abort();
    pause.disabled = true;
    say(state, `Paused after ${from.value || "nothing"}.`);
  });
  root.append(
    el(
      "div",
      { class: "toolbar" },
      labelled("Message id to resume or poll after", from),
      pause,
      el("button", { type: "button", on: { click: read } }, "Resume"),
      el("button", { type: "button", on: { click: poll } }, "Poll"),
    ),
    state,
    ended,
    section("live-title", "Stream", tableWrap("Stream events", live)),
    section("poll-title", "Poll", polled),
  );
  read();
}

export default {
  title: "Events",
  async mount(root, { argument, signal }) {
    root.append(heading("Events"));
    const { fleets, status } = await allFleets(signal);
    if (signal.aborted) return;
    if (status) return root.append(renderStatus(status));
    const fleet = fleets.find((f) => f.id === argument) ?? fleets[0];
    if (!fleet) return root.append(el("p", {}, "This namespace has no fleets."));
    root.append(fleetPicker(fleets, fleet.id));
    follow(root, fleet, signal);
  },
};
