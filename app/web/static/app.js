// The page: log in or sign up, then three views (chat, usage, API keys). Nothing is shown before a login.
import { loggedIn, logout, setSession, start, whenLoggedOut } from "./api.js";
import * as chat from "./chat.js";
import { clearError, loggedOutText, showError } from "./errors.js";
import * as keys from "./keys.js";
import * as usage from "./usage.js";

const $ = (id) => document.getElementById(id);
const VIEWS = ["auth-view", "chat-view", "usage-view", "keys-view"];
let orgs = [];

function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  $("nav").hidden = view === "auth-view";
  for (const button of document.querySelectorAll("#nav [data-view]")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (view !== "keys-view") keys.forget();
}

async function open(view) {
  clearError();
  if (view === "usage-view") {
    orgs = await chat.loadChoices();
    await usage.render(orgs);
  }
  if (view === "keys-view") await keys.render();
  show(view);
  if (view === "chat-view") $("message-input").focus();
  else $(view).querySelector("h2").focus();  // a keyboard user lands at the top of the view they opened
}

function loggedOut(message) {
  chat.reset();
  keys.forget();
  $("usage-body").replaceChildren();  // the last user's data goes with them, shown or not
  $("key-list").replaceChildren();
  $("who").textContent = "";
  $("password").value = "";
  show("auth-view");
  if (message) showError(message);
  $("email").focus();
}

async function enter(path) {
  clearError();
  const email = $("email").value.trim();
  const password = $("password").value;
  const body = path === "/auth/register" ? { email, password, name: $("name").value.trim() || null } : { email, password };
  const user = await start(path, body);
  $("password").value = "";
  $("who").textContent = user.name ? `${user.name} (${user.email})` : user.email;
  orgs = await chat.loadChoices();
  await chat.loadConversations();
  show("chat-view");
  $("message-input").focus();
}

function init() {
  whenLoggedOut((error) => loggedOut(loggedOutText(error)));
  $("auth-form").addEventListener("submit", (event) => { event.preventDefault(); enter("/auth/login").catch(showError); });
  $("register").addEventListener("click", () => enter("/auth/register").catch(showError));
  $("logout").addEventListener("click", () => {
    logout().catch(() => {}).finally(() => { setSession(null); loggedOut(null); });
  });
  for (const button of document.querySelectorAll("#nav [data-view]")) {
    button.addEventListener("click", () => open(button.dataset.view).catch(showError));
  }
  $("error-dismiss").addEventListener("click", () => {
    clearError();
    (loggedIn() ? $("message-input") : $("email")).focus();
  });
  chat.init();
  keys.init();
  show("auth-view");
  $("email").focus();
  document.body.dataset.ready = "true";  // for tests and tools that drive the page: the script has run
}

init();
