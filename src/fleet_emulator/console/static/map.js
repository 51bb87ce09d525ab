/*
 * The map of a fleet, drawn as SVG without tiles or network: each vehicle is a dot coloured by its
 * connectivity with its label, placed by an equirectangular projection into the bounding box of the
 * fleet's vehicles plus a margin, widened to a 4:3 frame so that the map keeps its shape.
 */

import { el, svg } from "./dom.js";
import { enumLabel } from "./format.js";

const ASPECT = 4 / 3;
const MARGIN = 0.08;
const MIN_SPAN = 0.002; // degrees: the frame of a single vehicle

function located(vehicle) {
  const l = vehicle.location;
  return l && (l.latitude !== 0 || l.longitude !== 0);
}

/** The frame `{x, y, width, height}` in projected units around `points`, with margin and aspect ratio. */
function frame(points) {
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  let width = Math.max(Math.max(...xs) - Math.min(...xs), MIN_SPAN);
  let height = Math.max(Math.max(...ys) - Math.min(...ys), MIN_SPAN);
  const cx = (Math.max(...xs) + Math.min(...xs)) / 2;
  const cy = (Math.max(...ys) + Math.min(...ys)) / 2;
  width *= 1 + 2 * MARGIN;
  height *= 1 + 2 * MARGIN;
  if (width / height < ASPECT) width = height * ASPECT;
  else height = width / ASPECT;
  return { x: cx - width / 2, y: cy - height / 2, width, height };
}

function legend() {
  const states = ["ONLINE", "ASLEEP", "OFFLINE", "UNSPECIFIED"];
  return el(
    "ul",
    { class: "legend" },
    states.map((s) => el("li", {}, el("span", { class: `dot state-${s.toLowerCase()}`, "aria-hidden": "true" }), s)),
  );
}

/** A map figure; `update(vehicles)` draws the given vehicles. */
export function fleetMap(caption) {
  const drawing = svg("svg", { class: "map", role: "img", "data-testid": "fleet-map", "aria-label": caption });
  const element = el("figure", { class: "map-figure" }, drawing, el("figcaption", {}, caption, legend()));

  function update(vehicles) {
    const placed = vehicles.filter(located);
    drawing.setAttribute("aria-label", `${caption}: ${placed.length} vehicles`);
    drawing.replaceChildren();
    if (!placed.length) return;
    const meanLatitude = placed.reduce((sum, v) => sum + v.location.latitude, 0) / placed.length;
    const scale = Math.cos((meanLatitude * Math.PI) / 180);
    const points = placed.map((v) => ({ v, x: v.location.longitude * scale, y: -v.location.latitude }));
    const box = frame(points);
    const unit = box.width / 100;
    drawing.setAttribute("viewBox", `${box.x} ${box.y} ${box.width} ${box.height}`);
    drawing.append(svg("rect", { class: "map-ground", x: box.x, y: box.y, width: box.width, height: box.height }));
    for (const { v, x, y } of points) {
      const state = enumLabel(v.connectivity).toLowerCase();
      drawing.append(
        svg(
          "g",
          { class: `map-vehicle state-${state}`, "data-testid": "map-vehicle", "data-vehicle-id": v.id },
          svg("title", {}, `${v.label}: ${enumLabel(v.connectivity)}, ${enumLabel(v.operational_status)}`),
          svg("circle", { cx: x, cy: y, r: unit * 1.2 }),
          svg("text", { x: x + unit * 1.6, y: y + unit * 0.9, "font-size": unit * 2.6 }, v.label),
        ),
      );
    }
  }

  return { element, update };
}
