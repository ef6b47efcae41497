// The chat view: conversations, the message log, streamed replies and their usage chips.
import { ApiError, call, stream } from "./api.js";
import { clearError, showError } from "./errors.js";
import { count, el, field, messageCost, usd } from "./format.js";

const $ = (id) => document.getElementById(id);
const prices = JSON.parse(document.body.dataset.prices || "{}");

const state = { conversations: [], current: null, controller: null, deleteArmed: false,
                listVersion: 0 };  // bumped by every change made here: a list fetched before it is stale

// Model output is untrusted: it only ever reaches the page as text (textContent), never as markup.
function messageNode(role, text, { model, partial } = {}) {
  const assistant = role === "ASSISTANT";
  const label = assistant ? `Assistant${model ? " · " + model : ""}` : "You";
  return el("article", { class: `message ${assistant ? "assistant" : "user"}`,
                         "data-testid": assistant ? "assistant-message" : "user-message",
                         "data-partial": partial ? "true" : null },
            el("h3", { class: "role", text: label }),
            el("div", { class: "content", text }));
}

function tokensPerSecond(usage, timings) {
  const generating = (timings.totalMs ?? 0) - (timings.timeToFirstTokenMs ?? 0);
  return generating > 0 && usage.completionTokens > 0 ? (usage.completionTokens * 1000 / generating).toFixed(1) : null;
}

// The chip under an assistant message, from the stored message's meta (the same numbers the API stores).
function usageChip(meta) {
  const usage = meta.usage || {};
  const timings = meta.timings || {};
  const parts = [field("prompt", count(usage.promptTokens ?? 0)), " prompt + ",
                 field("completion", count(usage.completionTokens ?? 0)), " completion tokens"];
  if (usage.estimated) {
    parts.push(" ", el("abbr", { "data-field": "estimated", title: `Counted by the gateway (${usage.method}): `
      + "the model server reported no usage", text: "(estimated)" }));
  }
  if (timings.timeToFirstTokenMs !== null && timings.timeToFirstTokenMs !== undefined) {
    parts.push(" · first token ", field("ttft", count(Math.round(timings.timeToFirstTokenMs))), " ms");
  }
  const rate = tokensPerSecond(usage, timings);
  if (rate !== null) parts.push(" · ", field("rate", rate), " tokens/s");
  const cost = messageCost(prices[meta.model], usage);
  if (cost !== null) parts.push(" · ", field("cost", usd(cost)));
  if (meta.partial) parts.push(" · ", field("partial", meta.reason === "client_disconnect" ? "stopped" : "cut short"));
  return el("p", { class: "chip", "data-testid": "message-usage" }, parts);
}

function renderTotals(usage) {
  const node = $("conversation-usage");
  if (!usage) { node.replaceChildren(); return; }
  const parts = ["This conversation: ", field("total", count(usage.totalTokens)), " tokens (",
                 field("prompt", count(usage.promptTokens)), " prompt + ",
                 field("completion", count(usage.completionTokens)), " completion) in ",
                 field("completions", count(usage.completions)), usage.completions === 1 ? " reply" : " replies"];
  if (usage.costUsd !== null && usage.costUsd !== undefined) parts.push(" · ", field("cost", usd(usage.costUsd)));
  node.replaceChildren(...parts);
}

function renderList() {
  const items = state.conversations.map((conversation) => {
    const button = el("button", { type: "button", class: "conversation-item", "data-testid": "conversation-item",
                                  "data-id": conversation.id,
                                  "aria-current": conversation.id === state.current?.id ? "true" : null,
                                  text: conversation.title || "Untitled conversation" });
    button.addEventListener("click", () => open(conversation.id).catch(showError));
    return el("li", {}, button);
  });
  $("conversation-list").replaceChildren(...items);
}

export async function loadConversations() {
  const version = state.listVersion;
  const page = await call("GET", "/conversations?limit=100");
  if (version !== state.listVersion) return;  // a rename or a deletion happened meanwhile: this list predates it
  state.conversations = page.items;
  renderList();
}

export async function loadChoices() {
  const [models, orgs] = await Promise.all([call("GET", "/models"), call("GET", "/orgs")]);
  $("model-select").replaceChildren(...models.items.map((model) =>
    el("option", { value: model.name, selected: model.isDefault, text: model.name + (model.isDefault ? " (default)" : "") })));
  $("conversation-org").replaceChildren(el("option", { value: "", text: "Nobody (personal)" }),
    ...orgs.map((org) => el("option", { value: org.id, text: `${org.name} (${org.role.toLowerCase()})` })));
  return orgs;
}

function showConversation(conversation) {
  state.current = conversation;
  state.deleteArmed = false;
  $("delete-conversation").textContent = "Delete";
  $("conversation-title").value = conversation ? conversation.title || "" : "";
  $("conversation-title").disabled = $("delete-conversation").disabled = !conversation;
  if (conversation?.model) $("model-select").value = conversation.model;
  renderTotals(conversation?.usage);
  $("messages").replaceChildren(...(conversation?.messages || []).filter((m) => m.role !== "SYSTEM").map((message) => {
    const node = messageNode(message.role, message.content, { model: message.meta?.model, partial: message.meta?.partial });
    if (message.role === "ASSISTANT" && message.meta?.usage) node.append(usageChip(message.meta));
    return node;
  }));
  renderList();
}

export async function open(id) {
  clearError();
  showConversation(await call("GET", `/conversations/${encodeURIComponent(id)}?limit=200`));
  $("messages").scrollTop = $("messages").scrollHeight;
}

async function refreshTotals() {
  if (!state.current) return;
  const conversation = await call("GET", `/conversations/${encodeURIComponent(state.current.id)}?limit=1`);
  state.current.usage = conversation.usage;
  renderTotals(conversation.usage);
}

async function create(title) {
  const orgId = $("conversation-org").value || null;
  const conversation = await call("POST", "/conversations", { title, orgId, model: $("model-select").value || null });
  state.listVersion += 1;
  state.conversations.unshift(conversation);
  showConversation({ ...conversation, messages: [], usage: null });
  return conversation;
}

export function reset() {
  state.controller?.abort();  // a reply still streaming ends with the session
  state.conversations = [];
  showConversation(null);
}

async function rename() {
  if (!state.current) return;
  const title = $("conversation-title").value.trim() || null;
  if (title === (state.current.title || null)) return;
  const updated = await call("PATCH", `/conversations/${encodeURIComponent(state.current.id)}`, { title });
  state.listVersion += 1;
  state.current.title = updated.title;
  state.conversations = state.conversations.map((c) => (c.id === updated.id ? { ...c, title: updated.title } : c));
  renderList();
}

async function remove() {
  if (!state.current) return;
  if (!state.deleteArmed) {  // two steps, no confirm() dialog: one click never loses a conversation
    state.deleteArmed = true;
    $("delete-conversation").textContent = "Click again to delete";
    return;
  }
  await call("DELETE", `/conversations/${encodeURIComponent(state.current.id)}`);
  state.listVersion += 1;
  state.conversations = state.conversations.filter((c) => c.id !== state.current.id);
  showConversation(null);
  $("new-conversation").focus();
}

function setStreaming(streaming) {
  $("send").disabled = streaming;
  $("stop").disabled = !streaming;
  $("composer").setAttribute("aria-busy", streaming ? "true" : "false");
}

async function send() {
  const input = $("message-input");
  const content = input.value;
  if (!content.trim() || state.controller) return;
  clearError();
  const title = content.trim().slice(0, 60);
  const conversation = state.current || await create(title);
  if (!conversation.title && !$("messages").children.length) {  // a new conversation is named by its first message
    const named = await call("PATCH", `/conversations/${encodeURIComponent(conversation.id)}`, { title });
    conversation.title = named.title;
    $("conversation-title").value = named.title;
  }
  const model = $("model-select").value || null;
  input.value = "";
  const log = $("messages");
  log.append(messageNode("USER", content));
  const reply = messageNode("ASSISTANT", "", { model });
  reply.setAttribute("aria-busy", "true");  // announced once complete, not token by token
  log.append(reply);
  const text = reply.querySelector(".content");
  const controller = state.controller = new AbortController();
  setStreaming(true);
  try {
    await stream(`/conversations/${encodeURIComponent(conversation.id)}/stream`, { content, model }, {
      signal: controller.signal,
      onEvent(event) {
        if (event.type === "token") {
          text.textContent += event.token;
          log.scrollTop = log.scrollHeight;
        } else if (event.type === "end") {
          text.textContent = event.message.content;
          reply.append(usageChip(event.message.meta));
        } else if (event.type === "error") {
          reply.dataset.partial = "true";
          showError(new ApiError(0, { error: event.error }, null));  // the JSON error contract, in an event
        }
      },
    });
  } catch (error) {
    if (error.name === "AbortError") {
      reply.dataset.partial = "true";
      reply.append(el("p", { class: "chip", "data-testid": "message-stopped", text: "Stopped: the rest was not generated." }));
    } else {
      if (!text.textContent) reply.remove();
      showError(error);
    }
  } finally {
    reply.setAttribute("aria-busy", "false");
    state.controller = null;
    setStreaming(false);
    input.focus();
  }
  await refreshTotals().catch(showError);
  await loadConversations().catch(showError);  // newest first: this one moves to the top
}

export function init() {
  const input = $("message-input");
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send().catch(showError);
    }
  });
  $("composer").addEventListener("submit", (event) => { event.preventDefault(); send().catch(showError); });
  $("stop").addEventListener("click", () => state.controller?.abort());
  $("new-conversation").addEventListener("click", () => create(null).then(() => input.focus()).catch(showError));
  $("conversation-title").addEventListener("change", () => rename().catch(showError));
  $("conversation-title").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); rename().then(() => input.focus()).catch(showError); }
  });
  $("delete-conversation").addEventListener("click", () => remove().catch(showError));
  $("delete-conversation").addEventListener("blur", () => {
    state.deleteArmed = false;
    $("delete-conversation").textContent = "Delete";
  });
}
