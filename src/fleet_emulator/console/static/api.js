/*
 * The console's client of its HTTP API: `call` for a unary method of the admin service ("admin") or the v2
 * API ("v2"), `stream` for a server stream of the v2 API read as JSON lines. Both send the namespace picked
 * in the header and the admin token, ask for the token when the emulator refuses it and retry, and never
 * throw: they resolve with a status shaped like the console's answers (`code`, `codeNumber`, `message`,
 * `details`, `flowId`), CANCELLED when the page aborted them, UNAVAILABLE when the console cannot be reached.
 */

import { field } from "./dom.js";
import { adminToken, askToken } from "./token.js";

const NAMESPACE_KEY = "fleet-console.namespace";
const TOKEN_REASONS = new Set(["ADMIN_TOKEN_MISSING", "ADMIN_TOKEN_INVALID"]);

/** The namespace the calls go to: "" is the emulator's default namespace (no header is sent). */
export function namespace() {
  return sessionStorage.getItem(NAMESPACE_KEY) || "";
}

export function setNamespace(name) {
  sessionStorage.setItem(NAMESPACE_KEY, name);
}

/** `GET /api/info`: namespaces, whether a token is required, the gRPC port and the version. */
export async function info() {
  const response = await fetch("/api/info");
  return response.json();
}

function headers() {
  const sent = { "Content-Type": "application/json" };
  if (namespace()) sent["X-Emulator-Namespace"] = namespace();
  const token = adminToken();
  if (token) sent.Authorization = `Bearer ${token}`;
  return sent;
}

/** The status of a call that got no answer from the emulator: aborted, or the console unreachable. */
function failure(error) {
  if (error?.name === "AbortError") return { code: "CANCELLED", codeNumber: 1, message: "cancelled by the page" };
  return { code: "UNAVAILABLE", codeNumber: 14, message: `no answer from the console: ${error}` };
}

function reasonOf(status) {
  const info = (status.details || []).find((d) => String(d["@type"]).endsWith("google.rpc.ErrorInfo"));
  return field(info, "reason");
}

/** Whether to ask for the admin token and try again after `status`. */
async function retryWithToken(status) {
  if (!TOKEN_REASONS.has(reasonOf(status))) return false;
  return askToken({ refused: Boolean(adminToken()) });
}

function post(path, body, signal) {
  return fetch(path, { method: "POST", headers: headers(), body: JSON.stringify(body), signal });
}

/** A unary call: `{code: "OK", codeNumber: 0, response}` or the status it was refused with. */
export async function call(service, method, body = {}, signal = undefined) {
  for (;;) {
    let answer;
    try {
      const response = await post(`/api/call/${service}/${method}`, body, signal);
      if (!response.ok) return failure(`HTTP ${response.status} ${await response.text()}`);
      answer = await response.json();
    } catch (error) {
      return failure(error);
    }
    if (!(await retryWithToken(answer))) return answer;
  }
}

async function readLines(response, onLine) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop();
    for (const line of lines) if (line.trim()) onLine(JSON.parse(line));
  }
}

/**
 * A server stream of the v2 API: `onMessage` gets each message; resolves with the status it ended with
 * (CANCELLED once `signal` aborts it).
 */
export async function stream(method, body, onMessage, signal) {
  for (;;) {
    let received = 0;
    let status = { code: "UNAVAILABLE", codeNumber: 14, message: "the stream ended without a status" };
    try {
      const response = await post(`/api/stream/v2/${method}`, body, signal);
      if (!response.ok) return failure(`HTTP ${response.status} ${await response.text()}`);
      await readLines(response, (line) => {
        if (line.status) status = line.status;
        else {
          received += 1;
          onMessage(line.message);
        }
      });
    } catch (error) {
      return failure(error);
    }
    if (received || !(await retryWithToken(status))) return status;
  }
}

/** Every fleet of the namespace, following `next_page_token`; `{fleets}` or `{status}` when refused. */
export async function allFleets(signal) {
  const fleets = [];
  let token = "";
  do {
    const answer = await call("v2", "ListFleets", { page_size: 1000, page_token: token }, signal);
    if (answer.code !== "OK") return { status: answer };
    fleets.push(...answer.response.fleets);
    token = answer.response.next_page_token;
  } while (token);
  return { fleets };
}

/** Run `task` every `ms` (counted from the end of the last run) while `enabled()` holds, until `signal`
 * aborts. */
export function every(ms, task, signal, enabled = () => true) {
  let timer;
  const run = async () => {
    if (enabled()) await task();
    if (!signal.aborted) timer = setTimeout(run, ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  timer = setTimeout(run, ms);
}
