// The usage view: the user's month by model and by day (an inline SVG chart), and for the orgs they manage,
// the org's month and its budget as a chip that changes at 80% and at 100%.
import { call } from "./api.js";
import { count, el, field, usd, when } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const WARN_AT = 0.8;

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function totalsLine(totals) {
  const parts = [field("total", count(totals.totalTokens)), " tokens (", field("prompt", count(totals.promptTokens)),
                 " prompt + ", field("completion", count(totals.completionTokens)), " completion) in ",
                 field("completions", count(totals.completions)), " completions"];
  if (totals.costUsd !== null) parts.push(" · ", field("cost", usd(totals.costUsd)));
  return parts;
}

function byModel(groups) {
  const rows = groups.map((group) => el("tr", { "data-model": group.key },
    el("th", { scope: "row", text: group.key }),
    el("td", { "data-field": "total", text: count(group.totalTokens) }),
    el("td", { "data-field": "completions", text: count(group.completions) }),
    el("td", { "data-field": "cost", text: usd(group.costUsd) ?? "no price" })));
  return el("table", { class: "by-model" },
    el("caption", { text: "By model" }),
    el("thead", {}, el("tr", {}, ["Model", "Tokens", "Replies", "Cost"].map((name) => el("th", { scope: "col", text: name })))),
    el("tbody", {}, rows.length ? rows : el("tr", {}, el("td", { colspan: "4", text: "No completions yet this month." }))));
}

// One bar per UTC day of the month, drawn by the page: no chart library.
function byDay(report, groups) {
  const start = new Date(report.from);
  const days = Math.round((new Date(report.to) - start) / 86400000);
  const tokens = Object.fromEntries(groups.map((group) => [group.key, group.totalTokens]));
  const most = Math.max(1, ...Object.values(tokens));
  const width = 10, gap = 2, height = 80;
  const chart = svg("svg", { viewBox: `0 0 ${days * (width + gap)} ${height + 14}`, role: "img",
                             "aria-labelledby": "by-day-title", class: "by-day", "data-testid": "usage-chart" },
                    svg("title", { id: "by-day-title" }, "Tokens by day this month"));
  for (let day = 0; day < days; day++) {
    const key = new Date(start.getTime() + day * 86400000).toISOString().slice(0, 10);
    const value = tokens[key] || 0;
    const bar = Math.round((value / most) * height);
    chart.append(svg("rect", { x: day * (width + gap), y: height - bar, width, height: Math.max(bar, value ? 1 : 0),
                               class: "bar", "data-day": key, "data-tokens": value },
                     svg("title", {}, `${key}: ${count(value)} tokens`)));
    if (day % 5 === 0) {
      chart.append(svg("text", { x: day * (width + gap), y: height + 12, class: "axis" }, String(day + 1)));
    }
  }
  return el("figure", {}, chart, el("figcaption", { text: `Tokens by UTC day; the tallest bar is ${count(most)}.` }));
}

function limitText(used, limit, unit) {
  return limit === null ? null : `${unit === "$" ? usd(used) : count(used)} of ${unit === "$" ? usd(limit) : count(limit) + " tokens"}`;
}

// The budget chip: the larger of the two utilisations decides its state.
export function budgetChip(org, budget) {
  const ratios = [budget.tokenUtilisation, budget.costUtilisation].filter((r) => r !== null && r !== undefined);
  const ratio = ratios.length ? Math.max(...ratios) : null;
  const state = ratio === null ? "none" : ratio >= 1 ? "exhausted" : ratio >= WARN_AT ? "warning" : "ok";
  const limits = [limitText(budget.tokensUsed, budget.monthlyTokens, "tokens"),
                  limitText(budget.costUsedUsd, budget.monthlyCostUsd, "$")].filter(Boolean);
  const words = { none: "no budget set", ok: "within budget", warning: "over 80% of its budget",
                  exhausted: `budget used up: chats resume ${when(budget.resetsAt)}` }[state];
  const chip = el("p", { class: `budget ${state}`, "data-testid": "budget-chip", "data-org": org.id, "data-state": state },
    el("strong", { text: org.name }), ": ", field("state", words));
  if (ratio !== null) {
    chip.append(" · ", field("percent", `${Math.floor(ratio * 100)}%`), " (", limits.join(", "), ")");
    chip.append(el("progress", { max: "100", value: String(Math.min(100, Math.round(ratio * 100))),
                                 "aria-label": `${org.name} budget used` }));
  }
  return chip;
}

async function orgSection(org) {
  const [report, budget] = await Promise.all([call("GET", `/orgs/${encodeURIComponent(org.id)}/usage`),
                                              call("GET", `/orgs/${encodeURIComponent(org.id)}/budget`)]);
  return el("section", { class: "org-usage", "data-testid": "org-usage", "data-org": org.id },
    el("h3", { text: `${org.name} (everyone's chats in it)` }),
    el("p", { class: "totals" }, totalsLine(report.totals)),
    budgetChip(org, budget));
}

export async function render(orgs) {
  const [models, days] = await Promise.all([call("GET", "/auth/me/usage?groupBy=model"),
                                            call("GET", "/auth/me/usage?groupBy=day")]);
  const managed = orgs.filter((org) => org.role === "OWNER" || org.role === "ADMIN");
  const sections = await Promise.all(managed.map(orgSection));
  document.getElementById("usage-body").replaceChildren(
    el("p", { class: "period", text: new Date(models.from).toLocaleDateString(undefined,
      { month: "long", year: "numeric", timeZone: "UTC" }) + " (a UTC month)" }),
    el("p", { class: "totals", "data-testid": "usage-totals" }, "You: ", totalsLine(models.totals)),
    byModel(models.groups || []),
    byDay(days, days.groups || []),
    ...sections);
}
