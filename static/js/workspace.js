// The agent workspace: my conversations and the shop's queue, status, transfer, close, quick replies.

import { ratedText, ratingBadge } from "./desk-csat.js";
import {
  ChatType, Code, MessageList, MsgType, avatar, composer, config, connect, el, getJson, preview, t,
  timeElement, typingSignals, uploadImage,
} from "./ui.js";
import { offerCard } from "./cards.js";
import { installAlerts } from "./desk-alerts.js";
import { guardRendered, watchGuard } from "./desk-guard.js";
import { installDesk } from "./desk-notes.js";
import { mountSearch, revealMessage } from "./desk-search.js";

const me = config.me;
const $ = (id) => document.getElementById(id);
const layout = $("layout");
const banner = $("banner");
const form = $("composer");
const input = $("message-input");

let state = config.state;
let recent = []; // user.recentChat rows of the shop side
let active = null; // {chatId, shopId, consumerId, title, avatar}
let refreshTimer = 0;
let readTimer = 0;

const client = connect({ onUnauthorized: () => location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`) });

function consumerOf(chatId) {
  return Number(String(chatId).split("____")[1]);
}

const messages = new MessageList($("messages"), {
  sideOf: (m) => {
    if (!m.from_uid) return "notice";
    return m.from_uid === consumerOf(m.chat_id) ? "theirs" : "mine";
  },
  senderName: (m, side) => {
    if (side === "theirs") return m.nickname;
    if (side === "notice") return m.nickname;
    if (m.from_uid === me.id) return "";
    return m.service_nickname || m.nickname; // a colleague answered
  },
  loadOlder: async (page) => {
    const result = await client.request("user", "chatRecord", { chat_id: active.chatId, page, role_type: 1 });
    client.observe(result.rows);
    return result;
  },
  onRendered: guardRendered,
});
watchGuard(client, messages);

// --- lists ---------------------------------------------------------------------------------------

function sessionOf(chatId) {
  return state.sessions.find((session) => session.chat_id === chatId);
}

function minutesSince(unix) {
  return Math.max(0, Math.floor((client.serverNow() - unix) / 60));
}

function agentName(uid) {
  return state.agents.find((agent) => agent.uid === uid)?.name || `#${uid}`;
}

function sessionRow(session, detail) {
  const button = el("button", { type: "button", className: "conv", dataset: { chatId: session.chat_id },
    "aria-current": active?.chatId === session.chat_id ? "true" : "false" });
  const badge = el("span", { className: "badge", hidden: !session.unread_count },
    el("span", { "aria-hidden": "true" }, session.unread_count),
    el("span", { className: "visually-hidden" }, t("unread", { count: session.unread_count })));
  const name = el("span", { className: "name" }, session.consumer.name);
  if (detail) name.append(el("span", { className: "tag" }, detail));
  button.append(avatar(session.consumer.avatar), name, timeElement(session.last_time, { short: true }),
    el("span", { className: "preview" }, preview(session.msg_type, session.last_msg)), badge);
  const labels = desk.rowChips(session);
  if (labels) button.append(labels);
  button.addEventListener("click", () => openChat({ chatId: session.chat_id, shopId: session.shop_id,
    consumerId: session.consumer.id, title: session.consumer.name, avatar: session.consumer.avatar }));
  return el("li", {}, button);
}

function fillList(id, items, empty) {
  const list = $(id);
  list.replaceChildren(...items);
  if (!items.length) list.append(el("li", { className: "empty" }, empty));
  $(`${id}-count`)?.replaceChildren(items.length ? `(${items.length})` : "");
}

function renderLists() {
  desk.renderFilter();
  const sessions = state.sessions.filter(desk.shows);
  const mine = sessions.filter((s) => s.state === "open" && s.agent_uid === me.id)
    .sort((a, b) => b.last_time - a.last_time);
  const queue = sessions.filter((s) => s.state === "queued");
  const team = sessions.filter((s) => s.state === "open" && s.agent_uid !== me.id);
  fillList("mine", mine.map((s) => sessionRow(s)), t("my_sessions_empty"));
  fillList("queue", queue.map((s) => sessionRow(s,
    `${t("position", { position: s.queue_position })} · ${t("waiting_since", { minutes: minutesSince(s.queued_at) })}`)),
  t("queue_empty"));
  fillList("team", team.map((s) => sessionRow(s, t("with_agent", { name: agentName(s.agent_uid) }))), t("team_empty"));
  const live = new Set(sessions.map((s) => s.chat_id));
  $("recent").replaceChildren(...recent.filter((row) => !live.has(row.chat_id) && desk.shows(row)).map((row) => sessionRow({
    chat_id: row.chat_id, shop_id: row.shop_id, unread_count: row.unread_count, last_time: row.last_time,
    msg_type: row.msg_type, last_msg: row.last_msg,
    consumer: { id: row.friend_uid, name: row.friend_name, avatar: row.friend_avatar },
  })));
  renderStatus();
  renderActions();
}

async function refreshState() {
  state = await getJson(config.state_url);
  renderLists();
}

async function loadRecent() {
  const result = await client.request("user", "recentChat", { is_service: true });
  recent = result.rows;
  renderLists();
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => {
    refreshState().catch(() => {});
    loadRecent().catch(() => {});
  }, 300);
}

// --- status --------------------------------------------------------------------------------------

function renderStatus() {
  const statuses = Object.values(state.status);
  const current = statuses.length ? statuses[0] : null;
  for (const radio of document.querySelectorAll('input[name="status"]')) radio.checked = radio.value === current;
}

for (const radio of document.querySelectorAll('input[name="status"]')) {
  radio.addEventListener("change", async () => {
    if (!radio.checked) return;
    try {
      await client.request("service", "setStatus", { status: radio.value });
      for (const shop of Object.keys(state.status)) state.status[shop] = radio.value;
      showBanner(t("status_set", { status: t(`status_${radio.value}`) }));
      refreshSoon();
    } catch (error) {
      showBanner(t("error", { reason: error.message }));
      renderStatus();
    }
  });
}

// --- one conversation ----------------------------------------------------------------------------

async function openChat(target) {
  typing.stop();
  active = target;
  layout.dataset.pane = "chat";
  $("placeholder").hidden = true;
  $("chat-title").textContent = target.title;
  $("chat-subtitle").textContent = state.shops.find((shop) => shop.id === target.shopId)?.name || "";
  showBanner("");
  form.hidden = false;
  renderLists();
  renderQuickReplies();
  desk.open(target).catch(() => {});
  messages.reset(target.chatId);
  input.focus();
  loadCustomer(target.chatId);
  try {
    await messages.start();
  } catch (error) {
    showBanner(t("error", { reason: error.message }));
  }
  if (active !== target) return;
  messages.showUnacknowledged(client);
  markRead();
}

function renderActions() {
  const actions = $("session-actions");
  const session = active && sessionOf(active.chatId);
  actions.hidden = !session;
  if (!session) return;
  const select = $("transfer-to");
  const others = state.agents.filter((agent) => agent.shop_id === session.shop_id && agent.uid !== session.agent_uid);
  select.replaceChildren(...others.map((agent) => el("option", { value: String(agent.uid),
    disabled: agent.status !== "online" },
  `${agent.name} (${t(`status_${agent.status}`)}, ${agent.open_sessions}/${agent.max_sessions})`)));
  const available = others.some((agent) => agent.status === "online");
  $("transfer").disabled = !available;
  select.disabled = !available;
  if (!available) select.replaceChildren(el("option", { value: "" }, t("no_agents")));
  else select.value = String(others.find((agent) => agent.status === "online").uid);
}

function renderQuickReplies() {
  const list = $("quick-reply-list");
  const replies = state.quick_replies.filter((reply) => !active || reply.shop_id === active.shopId);
  $("quick-replies").hidden = !replies.length;
  list.replaceChildren(...replies.map((reply) => {
    const button = el("button", { type: "button", title: reply.text }, reply.title);
    button.addEventListener("click", () => {
      const text = desk.textOf(reply); // with {customer_name} etc. filled for this conversation
      input.value = input.value ? `${input.value} ${text}` : text;
      input.dispatchEvent(new Event("input"));
      $("quick-replies").open = false;
      input.focus();
    });
    return el("li", {}, button);
  }));
}

async function loadCustomer(chatId) {
  const panel = $("customer");
  panel.hidden = false;
  $("info-toggle").setAttribute("aria-expanded", "false");
  const body = $("customer-body");
  const sessions = $("customer-sessions");
  body.replaceChildren();
  sessions.replaceChildren();
  try {
    const customer = await getJson(`${config.customer_url}?chat_id=${encodeURIComponent(chatId)}`);
    if (active?.chatId !== chatId) return;
    body.append(el("div", { className: "person" }, avatar(customer.avatar),
      el("div", {}, el("strong", {}, customer.name), el("div", { className: "hint" }, `@${customer.username} · #${customer.id}`))),
    el("p", { className: "hint" }, t("sessions_total", { count: customer.sessions_total })));
    for (const session of customer.sessions) {
      const parts = [t(`session_${session.state}`)];
      if (session.agent) parts.push(session.agent);
      if (session.first_response_seconds !== null) parts.push(t("first_response", { seconds: session.first_response_seconds }));
      sessions.append(el("li", {}, timeElement(session.created_at), " · ", parts.join(" · "), ...ratingBadge(session)));
    }
  } catch (error) {
    body.append(el("p", { className: "hint" }, t("error", { reason: error.message })));
  }
}

$("info-toggle").addEventListener("click", () => {
  const showing = layout.dataset.pane === "info";
  layout.dataset.pane = showing ? "chat" : "info";
  $("info-toggle").setAttribute("aria-expanded", String(!showing));
  (showing ? input : $("customer-title")).focus();
});
$("info-back").addEventListener("click", () => {
  layout.dataset.pane = "chat";
  $("info-toggle").setAttribute("aria-expanded", "false");
  input.focus();
});

function markRead() {
  clearTimeout(readTimer);
  if (!active || document.visibilityState !== "visible") return;
  const chatId = active.chatId;
  readTimer = setTimeout(() => {
    const session = sessionOf(chatId);
    if (session?.unread_count) {
      session.unread_count = 0;
      renderLists();
    }
    client.request("chat", "setChatRead", { chat_id: chatId, role_type: 1 }).catch(() => {});
  }, 250);
}

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

function send(content) {
  typing.sent();
  const message = { chat_type: ChatType.SERVICE, to_uid: active.consumerId, chat_id: active.chatId,
    shop_id: active.shopId, role_type: "service", ...content };
  const { clientMsgId } = client.sendMessage(message);
  messages.addPending({ ...message, client_msg_id: clientMsgId, createtime: Math.floor(client.serverNow()) });
}

const desk = installDesk({ client, input, state: () => state, active: () => active, changed: () => renderLists(),
  banner: (text) => showBanner(t("error", { reason: text })) });
composer(form, input, (text) => send({ msg_type: MsgType.TEXT, msg: text }));
// A card the mall handed over (?card=...), e.g. the customer's order: sent to the open conversation.
offerCard(form, { canSend: () => Boolean(active), send: (card) => send({ msg_type: MsgType.TEXT, msg: "", card }) });
const typing = typingSignals(client, input, $("chat-subtitle"), {
  chatId: () => active?.chatId,
  roleType: 1,
  nameOf: (uid) => (uid === active?.consumerId ? active.title : agentName(uid)),
});

$("image-input").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = "";
  if (!file || !active) return;
  showBanner(t("uploading"));
  try {
    const url = await uploadImage(file);
    showBanner("");
    send({ msg_type: MsgType.IMAGE, msg: url });
  } catch (error) {
    showBanner(error.message);
  }
});

$("transfer").addEventListener("click", async () => {
  const toUid = Number($("transfer-to").value);
  if (!active || !toUid) return;
  try {
    await client.request("service", "transfer", { chat_id: active.chatId, to_uid: toUid });
    showBanner(t("transferred_to", { name: agentName(toUid) }));
    refreshSoon();
  } catch (error) {
    showBanner(t("error", { reason: error.message }));
  }
});

$("close-session").addEventListener("click", async () => {
  if (!active || !window.confirm(t("confirm_close"))) return;
  try {
    await client.request("service", "close", { chat_id: active.chatId });
    showBanner(t("closed_ok"));
    refreshSoon();
  } catch (error) {
    showBanner(t("error", { reason: error.message }));
  }
});

$("back").addEventListener("click", () => {
  layout.dataset.pane = "list";
  document.querySelector('.sidebar [aria-current="true"]')?.focus();
});

// The search box (desk-search.js): a hit opens its conversation and points at the message found.
mountSearch({ client, open: async ({ msgId, ...target }) => {
  await openChat(target);
  if (msgId && active === target) await revealMessage(messages, msgId);
} });

// --- socket events -------------------------------------------------------------------------------

// A hidden tab: title badge and (when turned on) the browser's notifications (desk-alerts.js).
const alerts = installAlerts({ button: $("notify-toggle"), open: openChat });

function targetOf(chatId, shopId, { name, avatar: picture } = {}) {
  const consumer = sessionOf(chatId)?.consumer;
  const consumerId = consumerOf(chatId);
  return { chatId, shopId, consumerId, title: consumer?.name || name || `#${consumerId}`,
    avatar: consumer?.avatar || picture || "" };
}

function noteMessage(m, { unread }) {
  const session = sessionOf(m.chat_id);
  const row = recent.find((item) => item.chat_id === m.chat_id);
  if (!session && !row) {
    refreshSoon();
    return;
  }
  for (const item of [session, row]) {
    if (!item) continue;
    if (m.createtime >= item.last_time) Object.assign(item, { last_msg: m.msg, msg_type: m.msg_type, last_time: m.createtime });
    if (unread) item.unread_count += 1;
  }
  renderLists();
}

client.addEventListener("message", ({ detail: { message: m } }) => {
  if (m.chat_type !== ChatType.SERVICE) return;
  const here = active && m.chat_id === active.chatId;
  if (here) {
    messages.add(m);
    markRead();
  }
  const fromConsumer = m.from_uid === consumerOf(m.chat_id);
  noteMessage(m, { unread: fromConsumer && !(here && document.visibilityState === "visible") });
  if (fromConsumer) {
    alerts.message(m, targetOf(m.chat_id, m.shop_id, { name: m.nickname, avatar: m.avatar }), preview(m.msg_type, m.msg));
  }
});

client.addEventListener("ack", ({ detail: { result, content } }) => {
  const m = { ...content, ...result, from_uid: me.id, nickname: me.name, avatar: me.avatar };
  if (active && result.chat_id === active.chatId) messages.add(m);
  noteMessage(m, { unread: false });
});

client.addEventListener("failed", ({ detail: { clientMsgId, error } }) => messages.failed(clientMsgId, error.message));

client.addEventListener("event", ({ detail: { code, result } }) => {
  if (code === Code.SESSION) {
    if ((result.event === "assigned" || result.event === "transferred") && result.agent_uid === me.id) {
      alerts.session(targetOf(result.chat_id, result.shop_id));
    }
    if (active && result.chat_id === active.chatId) {
      if (result.event === "closed") showBanner(t("closed_ok"));
      else if (result.event === "transferred" && result.agent_uid !== me.id) {
        showBanner(t("transferred_to", { name: agentName(result.agent_uid) }));
      }
    }
    refreshSoon();
  } else if (code === Code.AGENT_STATUS && String(result.shop_id) in state.status && result.uid === me.id) {
    state.status[String(result.shop_id)] = result.status;
    renderStatus();
  } else if (code === Code.READ) {
    const session = sessionOf(result.chat_id);
    if (session && session.unread_count) {
      session.unread_count = 0;
      renderLists();
    }
  } else if (code === Code.RECALLED && active && result.chat_id === active.chatId) {
    messages.recalled(result.msg_id);
  } else if (code === Code.SESSION_RATED && active && result.chat_id === active.chatId) {
    showBanner(ratedText(result));
    loadCustomer(active.chatId);
  }
});

client.addEventListener("ready", () => {
  refreshState().catch(() => {});
  loadRecent().catch(() => {});
});

document.addEventListener("visibilitychange", markRead);
// The queue is not pushed to agents (only to the waiting consumers): look again every few seconds.
setInterval(() => refreshState().catch(() => {}), 10000);

renderLists();
renderQuickReplies();
client.start();
window.imchat = { client, messages };
