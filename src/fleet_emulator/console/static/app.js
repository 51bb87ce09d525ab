/*
 * Entry point of the console: reads /api/info for the header (namespaces, token, version), and routes the
 * URL's hash `#/<page>/<argument>` to a page module. A page is `{title, mount(root, {argument, signal})}`:
 * it draws into `root` and stops its streams and timers when `signal` aborts, which happens when the user
 * leaves the page or picks another namespace (the page is then mounted again).
 */

import { info, namespace, setNamespace } from "./api.js";
import { el, show } from "./dom.js";
import { askToken } from "./token.js";
import clock from "./page-clock.js";
import events from "./page-events.js";
import faults from "./page-faults.js";
import fleets from "./page-fleets.js";
import journal from "./page-journal.js";
import report from "./page-report.js";
import vehicle from "./page-vehicle.js";

const PAGES = { fleets, vehicle, events, journal, faults, clock, report };
const root = document.getElementById("page");
let current = null;

function decoded(text) {
  try {
    return decodeURIComponent(text);
  } catch {
    return text; // not percent-encoded after all
  }
}

function route() {
  const [name, ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  return { name: PAGES[name] ? name : "fleets", argument: decoded(rest.join("/")) };
}

function skipToContent(event) {
  event.preventDefault(); // its #page would be taken for a route
  root.querySelector("h1")?.focus();
}

function mount({ focus = false } = {}) {
  current?.abort();
  current = new AbortController();
  const { name, argument } = route();
  const page = PAGES[name];
  document.title = `${page.title} · Fleet emulator`;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  show(root);
  page.mount(root, { argument, signal: current.signal });
  if (focus) root.querySelector("h1")?.focus();
}

function pickNamespace(event) {
  event.preventDefault();
  const input = document.getElementById("namespace");
  if (!input.reportValidity() || input.value === namespace()) return;
  setNamespace(input.value);
  mount();
}

async function header() {
  let about;
  try {
    about = await info();
  } catch (error) {
    show(document.getElementById("about"), `The console cannot be reached: ${error}`);
    return;
  }
  const list = document.getElementById("namespace-list");
  show(list, about.namespaces.filter(Boolean).map((name) => el("option", { value: name })));
  const button = document.getElementById("token-button");
  button.hidden = !about.tokenRequired;
  button.addEventListener("click", () => askToken({ force: true }).then((given) => given && mount()));
  show(document.getElementById("about"), `Fleet emulator ${about.version} · gRPC on port ${about.grpcPort}`);
}

document.querySelector(".skip").addEventListener("click", skipToContent);
document.getElementById("namespace").value = namespace();
document.getElementById("namespace-form").addEventListener("submit", pickNamespace);
document.getElementById("namespace").addEventListener("change", pickNamespace);
window.addEventListener("hashchange", () => mount({ focus: true }));
mount();
header();
