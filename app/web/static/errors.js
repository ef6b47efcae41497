// The error banner: what went wrong, in words that say what to do next.
import { ApiError, NetworkError } from "./api.js";
import { when } from "./format.js";

const banner = () => document.getElementById("error-banner");

const NO_MODEL_SERVER = "No model server answered the gateway. Start the one it points at (for Ollama: "
  + "`ollama serve`), or try the page without one: run `python -m bench.fake_model --port 11434` "
  + "beside the gateway, then send again.";

const LOGGED_OUT = {
  token_revoked: "You have been logged out: this session was ended (a logout or a password change). Log in again.",
  token_expired: "You have been logged out: your session expired. Log in again.",
};

function retryText(seconds) {
  if (seconds === null || Number.isNaN(seconds)) return "Try again in a moment.";
  const at = new Date(Date.now() + seconds * 1000);
  return `Try again in ${seconds} s (at ${at.toLocaleTimeString()}).`;
}

export function describe(error) {
  if (error instanceof NetworkError) return error.message;
  if (!(error instanceof ApiError)) return "Something went wrong in the page: reload it and try again.";
  switch (error.code) {
    case "provider_error":
      return `${error.message} ${NO_MODEL_SERVER}`;
    case "provider_timeout":
      return `The model server did not answer in time. It may still be loading the model: try again, `
        + `or check that it is running. ${NO_MODEL_SERVER}`;
    case "budget_exceeded": {
      const resets = error.details.resetsAt;
      return `Your organisation has used its monthly budget, so its conversations cannot chat until it resets `
        + `on ${when(resets)} (${error.retryAfter ? Math.ceil(error.retryAfter / 86400) + " day(s)" : "soon"}). `
        + `An OWNER or ADMIN can raise the budget; personal conversations are not limited.`;
    }
    case "too_many_requests":
      return `You are sending chats faster than this gateway allows. ${retryText(error.retryAfter)}`;
    case "too_many_streams":
      return `You have too many replies streaming at once: wait for one to finish or stop it. `
        + retryText(error.retryAfter);
    case "chat_capacity":
      return `The gateway is at its limit of concurrent chats. ${retryText(error.retryAfter)}`;
    case "database_unavailable":
    case "database_busy":
      return `The gateway's database is not answering. ${retryText(error.retryAfter)}`;
    case "invalid_credentials":
      return "That email and password do not match an account. Check them, or sign up.";
    case "validation_error": {
      const fields = Object.entries(error.details).map(([name, problems]) => `${name}: ${[].concat(problems).join(" ")}`);
      return `Please check: ${fields.join("; ") || error.message}`;
    }
    default:
      if (error.status === 401) return LOGGED_OUT[error.code] || "You have been logged out. Log in again.";
      if (error.status === 429) return `Too many requests. ${retryText(error.retryAfter)}`;
      return `${error.message} (${error.code})`;
  }
}

export function loggedOutText(error) {
  return LOGGED_OUT[error.code] || "You have been logged out. Log in again.";
}

export function showError(errorOrText) {
  const text = typeof errorOrText === "string" ? errorOrText : describe(errorOrText);
  document.getElementById("error-text").textContent = text;
  banner().dataset.code = errorOrText.code || "";
  banner().hidden = false;
}

export function clearError() {
  banner().hidden = true;
  document.getElementById("error-text").textContent = "";
}
