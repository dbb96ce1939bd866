// The consumer's chat page: conversation list, private and group chat, contact a shop, images.

import { offerCard } from "./cards.js";
import { ratingWidget } from "./chat-csat.js";
import { hideShopHours, showShopHours } from "./desk-hours.js";
import { groupChatId, privateChatId, serviceChatId } from "./imchat.js";
import {
  ChatType, Code, MessageList, MsgType, avatar, composer, config, connect, el, getJson, preview, t,
  timeElement, typingSignals, uploadImage,
} from "./ui.js";

const me = config.me;
const $ = (id) => document.getElementById(id);
const layout = $("layout");
const listNode = $("conversations");
const banner = $("banner");
const form = $("composer");
const input = $("message-input");

const rows = new Map(); // chat_id -> conversation row (user.recentChat shape)
let active = null; // {chatId, chatType, toUid, shopId, title, avatar}
let shops = null; // chat id -> shop, from the shop directory
let refreshTimer = 0;
let readTimer = 0;

const client = connect({ onUnauthorized: () => location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname)}`) });

const rating = ratingWidget({ client, pendingUrl: config.ratings_pending_url });

const messages = new MessageList($("messages"), {
  sideOf: (m) => {
    if (m.chat_type === ChatType.SYSTEM || (m.chat_type === ChatType.SERVICE && !m.from_uid)) return "notice";
    return m.mine === true || m.from_uid === me.id ? "mine" : "theirs";
  },
  senderName: (m, side) => {
    if (side === "mine") return "";
    if (m.chat_type === ChatType.GROUP) return m.nickname;
    if (m.chat_type === ChatType.SERVICE) {
      return m.service_nickname ? `${m.nickname} · ${m.service_nickname}` : m.nickname;
    }
    return "";
  },
  loadOlder: async (page) => {
    const result = await client.request("user", "chatRecord", { chat_id: active.chatId, page });
    client.observe(result.rows);
    return result;
  },
});

// --- conversation list ---------------------------------------------------------------------------

function kindLabel(chatType) {
  return { [ChatType.PRIVATE]: "", [ChatType.GROUP]: t("group"), [ChatType.SYSTEM]: t("system"),
    [ChatType.SERVICE]: t("shop") }[chatType] || "";
}

function renderRows() {
  const sorted = [...rows.values()].sort((a, b) => b.last_time - a.last_time);
  listNode.replaceChildren(...sorted.map(renderRow));
  const empty = $("conversations-empty");
  empty.hidden = sorted.length > 0;
  empty.textContent = t("no_conversations");
}

function renderRow(row) {
  const button = el("button", { type: "button", className: "conv", dataset: { chatId: row.chat_id },
    "aria-current": active?.chatId === row.chat_id ? "true" : "false" });
  const name = el("span", { className: "name" }, row.friend_name);
  const kind = kindLabel(row.chat_type);
  if (kind) name.append(el("span", { className: "tag" }, kind));
  const badge = el("span", { className: "badge", hidden: !row.unread_count },
    el("span", { "aria-hidden": "true" }, row.unread_count),
    el("span", { className: "visually-hidden" }, t("unread", { count: row.unread_count })));
  button.append(avatar(row.friend_avatar), name, timeElement(row.last_time, { short: true }),
    el("span", { className: "preview" }, preview(row.msg_type, row.last_msg)), badge);
  button.addEventListener("click", () => openChat(targetOf(row)));
  return el("li", {}, button);
}

function targetOf(row) {
  return { chatId: row.chat_id, chatType: row.chat_type, toUid: row.friend_uid, shopId: row.shop_id,
    title: row.friend_name, avatar: row.friend_avatar };
}

async function loadConversations() {
  const result = await client.request("user", "recentChat", { is_service: false });
  rows.clear();
  for (const row of result.rows) rows.set(row.chat_id, row);
  if (active && rows.has(active.chatId) && document.visibilityState === "visible") rows.get(active.chatId).unread_count = 0;
  renderRows();
}

function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => loadConversations().catch(() => {}), 300);
}

function noteMessage(m, { unread }) {
  const row = rows.get(m.chat_id);
  if (!row) {
    refreshSoon();
    return;
  }
  if (m.createtime >= row.last_time) {
    row.last_msg = m.msg;
    row.msg_type = m.msg_type;
    row.last_time = m.createtime;
  }
  if (unread) row.unread_count += 1;
  renderRows();
}

// --- one conversation ----------------------------------------------------------------------------

async function openChat(target) {
  typing.stop();
  active = target;
  layout.dataset.pane = "chat";
  $("placeholder").hidden = true;
  $("chat-title").textContent = target.title;
  const picture = $("chat-avatar");
  picture.hidden = !target.avatar;
  if (target.avatar) picture.replaceWith(Object.assign(avatar(target.avatar), { id: "chat-avatar" }));
  $("chat-subtitle").textContent = kindLabel(target.chatType) || t("private");
  showBanner("");
  form.hidden = target.chatType === ChatType.SYSTEM;
  rating.opened(target.chatId);
  renderRows();
  messages.reset(target.chatId);
  if (!form.hidden) input.focus();
  else $("chat-title").focus();
  if (target.chatType === ChatType.SERVICE) {
    describeShop(target.shopId || target.toUid);
    showShopHours(client, target.shopId || target.toUid, () => active === target);
  } else hideShopHours();
  try {
    await messages.start();
  } catch (error) {
    showBanner(t("error", { reason: error.message }));
  }
  if (active !== target) return;
  messages.showUnacknowledged(client);
  markRead();
}

function markRead() {
  clearTimeout(readTimer);
  if (!active || document.visibilityState !== "visible") return;
  const chatId = active.chatId;
  readTimer = setTimeout(() => {
    const row = rows.get(chatId);
    if (!row) return;
    if (row.unread_count) {
      row.unread_count = 0;
      renderRows();
    }
    client.request("chat", "setChatRead", { chat_id: chatId }).catch(() => {});
  }, 250);
}

function showBanner(text) {
  banner.textContent = text;
  banner.hidden = !text;
}

async function loadShops(fresh = false) {
  if (!shops || fresh) {
    const result = await getJson(config.shops_url);
    shops = new Map(result.shops.map((shop) => [shop.id, shop]));
  }
  return shops;
}

async function describeShop(shopId) {
  try {
    const shop = (await loadShops(true)).get(shopId);
    if (shop && active?.chatType === ChatType.SERVICE) {
      $("chat-subtitle").textContent = `${t("shop")} · ${shop.online ? t("shop_online") : t("shop_offline")}`;
    }
  } catch (error) {
    /* the subtitle is a nicety */
  }
}

async function openShop(shopId) {
  let shop;
  try {
    shop = (await loadShops()).get(shopId);
  } catch (error) {
    shop = null;
  }
  const chatId = serviceChatId(shopId, me.id);
  const row = rows.get(chatId);
  openChat(row ? targetOf(row) : { chatId, chatType: ChatType.SERVICE, toUid: shopId, shopId,
    title: shop?.name || `${t("shop")} ${shopId}`, avatar: shop?.logo });
}

function send(content) {
  typing.sent();
  const message = { chat_type: active.chatType, to_uid: active.toUid, chat_id: active.chatId,
    shop_id: active.chatType === ChatType.SERVICE ? active.shopId || active.toUid : 0, role_type: 0, ...content };
  const { clientMsgId } = client.sendMessage(message);
  messages.addPending({ ...message, client_msg_id: clientMsgId, createtime: Math.floor(client.serverNow()) });
}

composer(form, input, (text) => send({ msg_type: MsgType.TEXT, msg: text }));
// A card the mall handed over (?card=...): the server writes the message's text from it.
offerCard(form, { canSend: () => active && active.chatType !== ChatType.SYSTEM && active.chatType !== ChatType.GROUP,
  send: (card) => send({ msg_type: MsgType.TEXT, msg: "", card }) });
const typing = typingSignals(client, input, $("chat-subtitle"), {
  chatId: () => active?.chatId,
  nameOf: () => (active?.chatType === ChatType.PRIVATE ? active.title : ""),
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

$("back").addEventListener("click", () => {
  layout.dataset.pane = "list";
  listNode.querySelector('[aria-current="true"]')?.focus();
});

// --- socket events -------------------------------------------------------------------------------

client.addEventListener("message", ({ detail: { message: m } }) => {
  const mine = m.from_uid === me.id;
  const here = active && m.chat_id === active.chatId;
  if (here) {
    messages.add(m);
    markRead();
  }
  noteMessage(m, { unread: !mine && !(here && document.visibilityState === "visible") });
});

client.addEventListener("ack", ({ detail: { result, content } }) => {
  const m = { ...content, ...result, from_uid: me.id, nickname: me.name, avatar: me.avatar };
  if (active && result.chat_id === active.chatId) messages.add(m);
  noteMessage(m, { unread: false });
});

client.addEventListener("failed", ({ detail: { clientMsgId, error } }) => messages.failed(clientMsgId, error.message));

client.addEventListener("event", ({ detail: { code, result } }) => {
  if (code === Code.SESSION && active && result.chat_id === active.chatId) {
    const wait = result.eta_seconds ? ` ${t("queue_eta", { minutes: Math.max(1, Math.round(result.eta_seconds / 60)) })}` : "";
    const queued = result.reason === "out_of_hours" ? t("queued_closed") : t("queued", { position: result.queue_position }) + wait;
    const text = { queued, assigned: t("assigned"),
      transferred: t("transferred"), closed: t("closed") }[result.event];
    if (text) showBanner(text);
  } else if (code === Code.RECALLED && active && result.chat_id === active.chatId) {
    messages.recalled(result.msg_id);
  } else if (code === Code.GROUP) {
    refreshSoon();
  }
});

let firstReady = true;
client.addEventListener("ready", async () => {
  await loadConversations().catch((error) => showBanner(t("error", { reason: error.message })));
  if (firstReady && config.open_shop) openShop(config.open_shop);
  firstReady = false;
});

document.addEventListener("visibilitychange", markRead);

// --- dialogs -------------------------------------------------------------------------------------

async function people() {
  const result = await client.request("user", "friendList", {});
  return result.friend.flatMap((group) => group.list).filter((person) => person.id !== me.id);
}

$("new-chat").addEventListener("click", async () => {
  const dialog = $("people-dialog");
  const list = $("people-list");
  list.replaceChildren();
  dialog.showModal();
  const openPerson = (id, name, picture) => {
    dialog.close();
    const chatId = privateChatId(me.id, id);
    const row = rows.get(chatId);
    openChat(row ? targetOf(row) : { chatId, chatType: ChatType.PRIVATE, toUid: id, title: name, avatar: picture });
  };
  $("people-open").onclick = () => {
    const id = Number($("people-id").value);
    if (id > 0 && id !== me.id) openPerson(id, `#${id}`, "");
  };
  for (const person of await people()) {
    const button = el("button", { type: "button" }, avatar(person.avatar, "avatar small"), person.username);
    button.addEventListener("click", () => openPerson(person.id, person.username, person.avatar));
    list.append(el("li", {}, button));
  }
});

$("new-group").addEventListener("click", async () => {
  const dialog = $("group-dialog");
  const list = $("group-people");
  $("group-error").hidden = true;
  list.replaceChildren();
  dialog.showModal();
  for (const person of await people()) {
    const box = el("input", { type: "checkbox", value: String(person.id), id: `member-${person.id}` });
    list.append(el("li", {}, el("label", { for: `member-${person.id}` }, box, avatar(person.avatar, "avatar small"),
      person.username)));
  }
});

$("group-form").addEventListener("submit", async (event) => {
  if (event.submitter?.value !== "create") return;
  event.preventDefault();
  const name = $("group-name").value.trim();
  const uids = [...$("group-people").querySelectorAll("input:checked")].map((box) => Number(box.value));
  try {
    const result = await client.request("group", "create", { name, uids });
    $("group-dialog").close();
    $("group-name").value = "";
    await loadConversations();
    const row = rows.get(result.chat_id);
    openChat(row ? targetOf(row) : { chatId: groupChatId(result.group_id), chatType: ChatType.GROUP,
      toUid: result.group_id, title: result.name });
    showBanner(t("group_created", { name: result.name }));
  } catch (error) {
    $("group-error").textContent = error.message;
    $("group-error").hidden = false;
  }
});

$("contact-shop").addEventListener("click", async () => {
  const dialog = $("shops-dialog");
  const list = $("shops-list");
  list.replaceChildren();
  dialog.showModal();
  try {
    for (const shop of (await loadShops(true)).values()) {
      const state = el("span", { className: "tag" },
        shop.open_now === false ? t("shop_closed") : shop.online ? t("shop_online") : t("shop_offline"));
      const button = el("button", { type: "button", dataset: { shopId: shop.id } },
        avatar(shop.logo, "avatar small"), shop.name, state);
      button.addEventListener("click", () => {
        dialog.close();
        openShop(shop.id);
      });
      list.append(el("li", {}, button));
    }
  } catch (error) {
    list.append(el("li", {}, t("error", { reason: error.message })));
  }
});

client.start();
window.imchat = { client, messages }; // for the browser tests and the curious
