// CSAT on the shop's side (PROTOCOL-EXT.md): ratings in the workspace's customer panel, the 308 as it
// arrives, and the dashboard's satisfaction panel.

import { el, t } from "./ui.js";

const $ = (id) => document.getElementById(id);

export function stars(score) {
  return "★".repeat(score) + "☆".repeat(5 - score);
}

/** A past session's rating in the customer panel: a badge (and the comment), or nothing. */
export function ratingBadge(session) {
  if (!session.rating) return [];
  const badge = el("span", { className: "rating-badge", title: t("rating_of", { score: session.rating }),
    dataset: { score: session.rating } }, stars(session.rating));
  return session.rating_comment ? [" ", badge, el("q", { className: "rating-comment" }, session.rating_comment)]
    : [" ", badge];
}

/** The banner text of a 308 about the conversation on screen. */
export function ratedText(result) {
  return t("rating_received", { stars: stars(result.score), score: result.score });
}

function figures(summary) {
  return summary.count ? `${summary.average.toFixed(1)} ★ · ${t("rating_count", { count: summary.count })}`
    : t("rating_none");
}

/** The dashboard's satisfaction panel (the `ratings` of its JSON); silent when the panel is absent. */
export function renderRatings(summary, agentName) {
  if (!summary || !$("csat-average")) return;
  $("csat-average").textContent = summary.count ? `${summary.average.toFixed(1)} ★` : t("none");
  $("csat-count").textContent = t("rating_count", { count: summary.count });
  const top = Math.max(1, ...Object.values(summary.distribution));
  $("csat-distribution").replaceChildren(...[5, 4, 3, 2, 1].map((score) => {
    const n = summary.distribution[String(score)];
    const bar = el("span", { className: "load", "aria-hidden": "true" });
    bar.append(el("span", { style: `width: ${Math.round((100 * n) / top)}%` }));
    return el("tr", { dataset: { score } }, el("th", { scope: "row" }, stars(score)), el("td", {}, bar, ` ${n}`));
  }));
  $("csat-agents").replaceChildren(...summary.agents.map((agent) => el("tr", { dataset: { uid: agent.agent_uid } },
    el("td", {}, agentName(agent) || t("none")), el("td", {}, figures(agent)))));
}
