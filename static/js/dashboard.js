// The merchant dashboard: today's numbers, agents' live status and load, a bar chart (inline SVG);
// the reports of the last 7 or 30 days (dashboard-reports.js).

import { duration, startReports, svg } from "./dashboard-reports.js";
import { renderRatings } from "./desk-csat.js";
import { config, el, getJson, t } from "./ui.js";

const $ = (id) => document.getElementById(id);
const shops = JSON.parse($("im-shops").textContent);
const REFRESH_MS = 10000;

function chart(hourly) {
  const width = 720;
  const height = 220;
  const left = 34;
  const bottom = 24;
  const top = 12;
  const max = Math.max(1, ...hourly.map((bucket) => bucket.sessions));
  const step = (width - left - 8) / hourly.length;
  const scale = (height - top - bottom) / max;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-title" });
  root.append(svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width - 4, y2: height - bottom }));
  root.append(svg("line", { class: "axis", x1: left, y1: top, x2: left, y2: height - bottom }));
  root.append(svg("text", { x: left - 6, y: top + 4, "text-anchor": "end" }, String(max)));
  root.append(svg("text", { x: left - 6, y: height - bottom, "text-anchor": "end" }, "0"));
  for (const { hour, sessions } of hourly) {
    const x = left + hour * step + step * 0.15;
    const barHeight = sessions * scale;
    const bar = svg("rect", { class: "bar", x: x.toFixed(1), y: (height - bottom - barHeight).toFixed(1),
      width: (step * 0.7).toFixed(1), height: barHeight.toFixed(1), rx: 2 });
    bar.append(svg("title", {}, `${String(hour).padStart(2, "0")}:00 · ${sessions}`));
    root.append(bar);
    if (hour % 3 === 0) {
      root.append(svg("text", { x: (x + step * 0.35).toFixed(1), y: height - 6, "text-anchor": "middle" },
        `${String(hour).padStart(2, "0")}`));
    }
  }
  $("chart").replaceChildren(root);
  $("chart-table").tBodies[0].replaceChildren(...hourly.map(({ hour, sessions }) =>
    el("tr", {}, el("td", {}, `${String(hour).padStart(2, "0")}:00`), el("td", {}, sessions))));
}

function agents(rows) {
  const manyShops = shops.length > 1;
  const shopName = (id) => shops.find((shop) => shop.id === id)?.name || `#${id}`;
  $("agents").replaceChildren(...rows.map((agent) => {
    const share = agent.max_sessions ? Math.min(100, Math.round((100 * agent.open_sessions) / agent.max_sessions)) : 100;
    const load = el("span", { className: "load", "aria-hidden": "true" });
    load.append(el("span", { style: `width: ${share}%` }));
    return el("tr", { dataset: { uid: agent.uid } },
      el("td", {}, agent.name),
      manyShops ? el("td", {}, shopName(agent.shop_id)) : null,
      el("td", {}, el("span", { className: "pill" }, el("span", { className: `dot ${agent.status}`, "aria-hidden": "true" }),
        t(`status_${agent.status}`))),
      el("td", {}, agent.connected ? t("agent_connected") : t("agent_not_connected")),
      el("td", {}, load, `${agent.open_sessions} / ${agent.max_sessions}`));
  }));
}

function render(data) {
  $("queue-length").textContent = data.queue.length;
  $("queue-wait").textContent = data.queue.length ? duration(data.queue.longest_wait_seconds) : t("none");
  $("sessions-today").textContent = data.sessions.today;
  $("sessions-open").textContent = data.sessions.open;
  $("sessions-closed").textContent = data.sessions.closed_today;
  $("first-average").textContent = duration(data.first_response.average);
  $("first-median").textContent = duration(data.first_response.median);
  $("resolution-average").textContent = duration(data.resolution.average);
  $("resolution-median").textContent = duration(data.resolution.median);
  chart(data.hourly);
  agents(data.agents);
  renderRatings(data.ratings, (agent) => agent.name);
  if (data.flagged) { // the contact guard (issue 15)
    $("flagged-today").textContent = data.flagged.today;
    $("flagged-total").textContent = data.flagged.total;
  }
}

async function refresh() {
  const query = config.shop ? `?shop=${config.shop}` : "";
  try {
    render(await getJson(`${config.data_url}${query}`));
  } catch (error) {
    /* keep the last numbers; the next round tries again */
  }
}

render(config.data);
startReports();
setInterval(refresh, REFRESH_MS);
