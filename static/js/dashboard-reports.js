// The dashboard's reports over the last 7 or 30 days (customer_service/periods.py): conversations
// per day, first-reply times per day (median and p90), the agents' table, CSV downloads. Inline SVG.

import { config, el, getJson, t } from "./ui.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 220;
const LEFT = 40;
const BOTTOM = 24;
const TOP = 12;

/** Seconds as "45 s", "12 min", "1.5 h" (or the dash for none). */
export function duration(seconds) {
  if (seconds === null || seconds === undefined) return t("none");
  if (seconds < 120) return t("seconds", { value: Math.round(seconds) });
  if (seconds < 7200) return t("minutes", { value: Math.round(seconds / 60) });
  return t("hours", { value: (seconds / 3600).toFixed(1) });
}

export function svg(tag, attributes = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text) node.textContent = text;
  return node;
}

/** An empty chart: axes, the top value's label, and day labels every `every` days. */
function frame(titleId, days, top, label) {
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", "aria-labelledby": titleId });
  root.append(svg("line", { class: "axis", x1: LEFT, y1: HEIGHT - BOTTOM, x2: WIDTH - 4, y2: HEIGHT - BOTTOM }));
  root.append(svg("line", { class: "axis", x1: LEFT, y1: TOP, x2: LEFT, y2: HEIGHT - BOTTOM }));
  root.append(svg("text", { x: LEFT - 6, y: TOP + 4, "text-anchor": "end" }, label(top)));
  root.append(svg("text", { x: LEFT - 6, y: HEIGHT - BOTTOM, "text-anchor": "end" }, "0"));
  const step = (WIDTH - LEFT - 8) / days.length;
  const every = days.length > 10 ? 5 : 1;
  days.forEach((day, index) => {
    if (index % every) return;
    root.append(svg("text", { x: (LEFT + index * step + step / 2).toFixed(1), y: HEIGHT - 6, "text-anchor": "middle" },
      day.slice(5)));
  });
  return { root, step, scale: (HEIGHT - TOP - BOTTOM) / top };
}

function sessionsChart(rows) {
  const top = Math.max(1, ...rows.map((row) => Math.max(row.sessions_started, row.sessions_closed)));
  const { root, step, scale } = frame("report-sessions-title", rows.map((row) => row.day), top, String);
  rows.forEach((row, index) => {
    const x = LEFT + index * step;
    for (const [kind, value, offset] of [["started", row.sessions_started, 0.12], ["closed", row.sessions_closed, 0.5]]) {
      const height = value * scale;
      const bar = svg("rect", { class: `bar ${kind}`, x: (x + step * offset).toFixed(1),
        y: (HEIGHT - BOTTOM - height).toFixed(1), width: (step * 0.38).toFixed(1), height: height.toFixed(1), rx: 1 });
      bar.append(svg("title", {}, `${row.day} · ${t(`report_${kind}`)} ${value}`));
      root.append(bar);
    }
  });
  $("report-sessions-chart").replaceChildren(root);
}

function responseChart(rows) {
  const top = Math.max(1, ...rows.map((row) => row.first_response_p90 ?? 0));
  const { root, step, scale } = frame("report-response-title", rows.map((row) => row.day), top, duration);
  for (const [kind, field] of [["p50", "first_response_p50"], ["p90", "first_response_p90"]]) {
    // A day without a first reply leaves a gap in the line.
    let path = "";
    let pen = "M";
    rows.forEach((row, index) => {
      const value = row[field];
      if (value === null) { pen = "M"; return; }
      const x = LEFT + index * step + step / 2;
      const y = HEIGHT - BOTTOM - value * scale;
      path += `${pen}${x.toFixed(1)},${y.toFixed(1)} `;
      pen = "L";
      const dot = svg("circle", { class: `dot-${kind}`, cx: x.toFixed(1), cy: y.toFixed(1), r: 3 });
      dot.append(svg("title", {}, `${row.day} · ${t(`report_${kind}`)} ${duration(value)}`));
      root.append(dot);
    });
    root.prepend(svg("path", { class: `line-${kind}`, d: path.trim() }));
  }
  $("report-response-chart").replaceChildren(root);
}

function dayTable(rows) {
  $("report-days").replaceChildren(...rows.map((row) => el("tr", {},
    el("th", { scope: "row" }, row.day), el("td", {}, row.sessions_started), el("td", {}, row.sessions_closed),
    el("td", {}, duration(row.first_response_p50)), el("td", {}, duration(row.first_response_p90)))));
}

function agentTable(rows) {
  $("report-agents").replaceChildren(...rows.map((row) => el("tr", { dataset: { uid: row.agent_uid } },
    el("th", { scope: "row" }, row.agent_uid ? row.agent_name : t("report_no_agent")),
    el("td", {}, row.sessions_started), el("td", {}, row.sessions_unanswered), el("td", {}, row.sessions_closed),
    el("td", {}, duration(row.first_response_p50)), el("td", {}, duration(row.first_response_p90)),
    el("td", {}, duration(row.resolution_p50)), el("td", {}, row.messages_agent),
    el("td", {}, row.ratings ? `${row.rating_average.toFixed(1)} ★ (${row.ratings})` : t("none")))));
  $("report-agents-empty").hidden = rows.length > 0;
}

function downloads(report) {
  const links = $("report-downloads");
  if (!links) return; // several shops: the REST exports are per shop
  const range = `?since=${report.since}&until=${report.until}`;
  $("report-csv-daily").href = `${links.dataset.base}daily/export/${range}`;
  $("report-csv-agents").href = `${links.dataset.base}agents/export/${range}`;
}

export function renderReport(report) {
  sessionsChart(report.daily);
  responseChart(report.daily);
  dayTable(report.daily);
  agentTable(report.agents);
  downloads(report);
  $("report-range").textContent = t("report_range", { since: report.since, until: report.until, zone: report.timezone });
  for (const button of document.querySelectorAll("[data-report-days]")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.reportDays) === report.days));
  }
}

async function load(days) {
  const shop = config.shop ? `&shop=${config.shop}` : "";
  try {
    renderReport(await getJson(`${config.reports_url}?days=${days}${shop}`));
  } catch (error) {
    $("report-range").textContent = t("report_failed");
  }
}

export function startReports() {
  if (!$("reports")) return;
  for (const button of document.querySelectorAll("[data-report-days]")) {
    button.addEventListener("click", () => load(Number(button.dataset.reportDays)));
  }
  load(7);
}
