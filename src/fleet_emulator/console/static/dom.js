/*
 * Building DOM nodes safely: `el` makes an element from a tag, attributes and children, where every string
 * child becomes a text node, so data from the emulator is never parsed as HTML. `svg` does the same in the
 * SVG namespace. `field` reads a proto3 JSON field by its .proto name or its camelCase JSON name.
 */

const SVG_NS = "http://www.w3.org/2000/svg";

function fill(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "on") {
      for (const [type, handler] of Object.entries(value)) node.addEventListener(type, handler);
    } else if (name === "text") {
      node.textContent = String(value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      node[name] = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** An HTML element: `el("a", {href: "#/x", class: "c"}, "text", otherNode)`. */
export function el(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** An SVG element, like `el`. */
export function svg(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** A field of a proto3 JSON object by its .proto name (`retry_delay`) or JSON name (`retryDelay`). */
export function field(object, name) {
  if (!object) return undefined;
  if (name in object) return object[name];
  return object[name.replace(/_([a-z])/g, (_, c) => c.toUpperCase())];
}

/** A labelled form control: `<div class="field"><label for=id>text</label>control</div>`. */
export function labelled(text, control) {
  return el("div", { class: "field" }, el("label", { for: control.id }, text), control);
}

/** A horizontally scrollable, keyboard-focusable region around a wide table. */
export function tableWrap(label, table) {
  return el("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" }, table);
}

/** A table with a caption-less header row of `columns` and an empty body, returned with its body. */
export function table(columns, attrs) {
  const body = el("tbody");
  const head = el("thead", {}, el("tr", {}, columns.map((c) => el("th", { scope: "col" }, c))));
  return { table: el("table", attrs, head, body), body };
}

/** The page's title: focusable, so that the router can move focus to it after a navigation. */
export function heading(text) {
  return el("h1", { tabindex: "-1" }, text);
}

/** A definition list of `[name, value]` pairs, leaving out empty values; each `<dd>` has data-field=name. */
export function pairs(entries) {
  const shown = entries.filter(([, value]) => value !== undefined && value !== null && value !== "");
  return el(
    "dl",
    { class: "pairs" },
    shown.map(([name, value]) => [el("dt", {}, name), el("dd", { "data-field": name }, value)]),
  );
}

/** A `<section>` titled by an `<h2>` of `title` with the id `id`, which names the section. */
export function section(id, title, ...children) {
  return el("section", { "aria-labelledby": id }, el("h2", { id }, title), children);
}

/** Set the text of a live region, only when it changes (so that screen readers announce changes only). */
export function say(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

/** Replace the children of `node` with `children`. */
export function show(node, ...children) {
  node.replaceChildren();
  return fill(node, {}, children);
}
