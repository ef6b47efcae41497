// Small helpers: elements built from text (never from HTML), numbers, dates and exact costs.

// An element with attributes and children; strings become text nodes, so nothing is ever parsed as markup.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function count(n) {
  return Number(n).toLocaleString("en-US");
}

// A number in its own span, so that people read it and tests find it: <span data-field="prompt">17</span>.
export function field(name, text) {
  return el("span", { "data-field": name, text });
}

export function when(iso) {
  if (!iso) return "an unknown date";
  return new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function shortDate(iso) {
  return iso ? new Date(iso).toLocaleDateString(undefined, { dateStyle: "medium" }) : "never";
}

// Costs are exact decimal strings, as the API gives them; the page never does float arithmetic on money.
const PLACES = 10n;  // what the gateway stores: a ten-billionth of a USD
const SCALE = 10n ** PLACES;

function toUnits(decimal) {  // "0.15" -> 1500000000n (units of 1e-10)
  const [whole, fraction = ""] = String(decimal).split(".");
  return BigInt(whole || "0") * SCALE + BigInt((fraction + "0".repeat(Number(PLACES))).slice(0, Number(PLACES)));
}

function fromUnits(units) {
  const whole = units / SCALE;
  const fraction = (units % SCALE).toString().padStart(Number(PLACES), "0").replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : `${whole}`;
}

// What a completion cost, as the gateway computes it: (prompt x input + completion x output) / 10^6,
// rounded half-even to 10 places. null when the model has no price.
export function messageCost(price, usage) {
  if (!price || !usage || (price.input === null && price.output === null)) return null;
  const perMillion = BigInt(usage.promptTokens) * toUnits(price.input || "0")
    + BigInt(usage.completionTokens) * toUnits(price.output || "0");
  let units = perMillion / 1000000n;
  const rest = perMillion % 1000000n;
  if (rest > 500000n || (rest === 500000n && units % 2n === 1n)) units += 1n;
  return fromUnits(units);
}

export function usd(cost) {
  return cost === null || cost === undefined ? null : "$" + cost;
}
