// The JSON API, as the page uses it: tokens kept in memory only, one refresh on an expired access token.
//
// Why memory and not a cookie: the API takes tokens in the Authorization header from every client, and
// /auth/refresh takes the refresh token the same way. A refresh cookie would need a cookie-reading refresh
// route and a CSRF scheme, which changes the contract other clients rely on. In memory, no other page and
// no later visit can read the tokens; the price is that a reload asks for the password again.

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || `The gateway answered ${status}`);
    this.status = status;
    this.code = error.code || "http_" + status;
    this.details = error.details || {};
    this.retryAfter = retryAfter;  // seconds, from Retry-After, or null
  }
}

export class NetworkError extends Error {}

let tokens = null;  // {access, refresh}
let refreshing = null;
let onLoggedOut = () => {};

export function setSession(session) {
  tokens = session ? { access: session.accessToken, refresh: session.refreshToken } : null;
}

export function loggedIn() {
  return tokens !== null;
}

export function whenLoggedOut(callback) {
  onLoggedOut = callback;
}

async function send(method, path, body, { signal, token } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const bearer = token || (tokens && tokens.access);
  if (bearer) headers.Authorization = "Bearer " + bearer;
  try {
    return await fetch(path, { method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
                               credentials: "omit", cache: "no-store" });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new NetworkError("The gateway did not answer: is it running, and is this computer online?");
  }
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: the status says enough */ }
  const retry = response.headers.get("Retry-After");
  return new ApiError(response.status, body, retry === null ? null : Number(retry));
}

async function refresh() {
  if (!tokens) return false;
  refreshing = refreshing || (async () => {
    const response = await send("POST", "/auth/refresh", undefined, { token: tokens.refresh });
    if (!response.ok) return false;
    const pair = await response.json();
    tokens = { access: pair.accessToken, refresh: pair.refreshToken };
    return true;
  })().finally(() => { refreshing = null; });
  return refreshing;
}

// A response that is ok; an expired access token is refreshed once; a session that cannot go on logs out.
async function authorised(method, path, body, options = {}) {
  let response = await send(method, path, body, options);
  if (response.status === 401 && tokens) {
    const error = await failure(response);
    if (error.code === "token_expired" && await refresh()) {
      response = await send(method, path, body, options);
    } else {
      tokens = null;
      onLoggedOut(error);
      throw error;
    }
    if (response.status === 401) {
      const again = await failure(response);
      tokens = null;
      onLoggedOut(again);
      throw again;
    }
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function call(method, path, body) {
  const response = await authorised(method, path, body);
  return response.status === 204 ? null : response.json();
}

// Sign-up and login: no token yet, and a 401 here is a wrong password, not a lost session.
export async function start(path, body) {
  const response = await send("POST", path, body);
  if (!response.ok) throw await failure(response);
  const session = await response.json();
  setSession(session);
  return session.user;
}

export async function logout() {
  if (!tokens) return;
  const refreshToken = tokens.refresh;
  try {
    await send("POST", "/auth/logout", { refreshToken });
  } finally {
    tokens = null;
  }
}

// POST a chat and read its server-sent events; `onEvent` gets each parsed event. Aborting `signal` closes the
// connection, which the gateway takes as the client leaving: it cancels the upstream call.
export async function stream(path, body, { signal, onEvent }) {
  const response = await authorised("POST", path, body, { signal });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data: ")).map((line) => line.slice(6));
      if (data.length) onEvent(JSON.parse(data.join("\n")));  // `: keep-alive` comments carry no data
    }
  }
}
