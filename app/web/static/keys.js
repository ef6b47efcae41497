// The API keys view: create a key (shown once, with a copy button), list keys, revoke them.
import { call } from "./api.js";
import { clearError, showError } from "./errors.js";
import { el, shortDate } from "./format.js";

const $ = (id) => document.getElementById(id);

function row(key) {
  const revoke = el("button", { type: "button", "data-testid": "revoke-key", "aria-label": `Revoke the key ${key.name}`,
                                text: "Revoke" });
  revoke.addEventListener("click", () => remove(key).catch(showError));
  return el("tr", { "data-testid": "api-key-item", "data-id": key.id },
    el("th", { scope: "row", text: key.name }),
    el("td", {}, el("code", { text: key.prefix + "…" })),
    el("td", { text: shortDate(key.createdAt) }),
    el("td", { text: shortDate(key.lastUsedAt) }),
    el("td", {}, revoke));
}

export async function render() {
  const keys = await call("GET", "/api-keys");
  $("key-list").replaceChildren(...(keys.length ? keys.map(row)
    : [el("tr", {}, el("td", { colspan: "5", text: "No keys yet." }))]));
}

async function create() {
  clearError();
  const name = $("key-name").value.trim();
  if (!name) {
    showError("Give the key a name, so you can tell it apart from the others later.");
    $("key-name").focus();
    return;
  }
  const created = await call("POST", "/api-keys", { name });
  $("key-name").value = "";
  $("new-key-value").value = created.key;
  $("copy-status").textContent = "";
  $("new-key").hidden = false;
  $("new-key-value").focus();
  $("new-key-value").select();
  await render();
}

async function remove(key) {
  clearError();
  await call("DELETE", `/api-keys/${encodeURIComponent(key.id)}`);
  await render();
  $("key-name").focus();
}

async function copy() {
  const input = $("new-key-value");
  try {
    await navigator.clipboard.writeText(input.value);
    $("copy-status").textContent = "Copied.";
  } catch {
    input.select();  // the clipboard needs a secure context: leave the key selected for Ctrl+C
    $("copy-status").textContent = "Selected: press Ctrl+C (or Cmd+C) to copy.";
  }
}

// A key is shown once: leaving the view (or logging out) forgets it.
export function forget() {
  $("new-key").hidden = true;
  $("new-key-value").value = "";
}

export function init() {
  $("key-form").addEventListener("submit", (event) => { event.preventDefault(); create().catch(showError); });
  $("copy-key").addEventListener("click", () => copy());
}
