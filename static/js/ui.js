// Shared pieces of the web pages: page config, strings, times, elements, and one conversation's
// message list (sorted by seq, one element per msg_id, history loaded upward on scroll).
// Text from users only ever goes into the page through textContent or attributes, never HTML.

import { ChatType, Code, ImClient, MsgType } from "./imchat.js";

export const config = JSON.parse(document.getElementById("im-config").textContent);

/** A translated string of the page, with {name} placeholders filled in. */
export function t(key, values = {}) {
  const text = config.strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in values ? String(values[name]) : match));
}

/** Build an element: `el("p", {className: "x", dataset: {id: 1}}, "text", child)`. */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "className" || name === "textContent" || name === "hidden" || name === "type" ||
             name === "value" || name === "checked" || name === "src" || name === "alt" || name === "title") {
      node[name] = value;
    } else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function avatar(url, className = "avatar") {
  const image = el("img", { className, alt: "", loading: "lazy" });
  if (safeUrl(url)) image.src = url;
  image.addEventListener("error", () => { image.removeAttribute("src"); }, { once: true });
  return image;
}

/** Only http(s) URLs reach an src attribute. */
export function safeUrl(url) {
  return typeof url === "string" && /^https?:\/\//i.test(url);
}

const dayFormat = new Intl.DateTimeFormat(config.lang, { month: "short", day: "numeric" });
const yearFormat = new Intl.DateTimeFormat(config.lang, { year: "numeric", month: "short", day: "numeric" });
const timeFormat = new Intl.DateTimeFormat(config.lang, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(config.lang, { dateStyle: "full", timeStyle: "short" });

/** "14:05" today, "Yesterday 14:05", "3 Mar 14:05", or with the year when not this year. */
export function formatTime(unix, { short = false } = {}) {
  if (!unix) return "";
  const date = new Date(unix * 1000);
  const now = new Date();
  const time = timeFormat.format(date);
  if (date.toDateString() === now.toDateString()) return time;
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (date.toDateString() === yesterday.toDateString()) return short ? t("yesterday") : `${t("yesterday")} ${time}`;
  const day = date.getFullYear() === now.getFullYear() ? dayFormat.format(date) : yearFormat.format(date);
  return short ? day : `${day} ${time}`;
}

export function timeElement(unix, options) {
  const node = el("time", { className: "time", textContent: formatTime(unix, options) });
  if (unix) {
    node.dateTime = new Date(unix * 1000).toISOString();
    node.title = fullFormat.format(new Date(unix * 1000));
  }
  return node;
}

export function preview(msgType, text) {
  return msgType === MsgType.IMAGE ? t("image") : text || "";
}

/** The page's socket client, with its connection state shown in #connection. */
export function connect({ onUnauthorized } = {}) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams(location.search);
  const client = new ImClient({
    url: `${scheme}://${location.host}${config.socket_path}`,
    uid: config.me.id,
    serverTime: config.server_time,
    // Tests shorten the heartbeat (?heartbeat=ms); people get the ~20 s the protocol suggests.
    heartbeatMs: Number(params.get("heartbeat")) || 20000,
    pongTimeoutMs: Number(params.get("pong_timeout")) || 8000,
  });
  const status = document.getElementById("connection");
  let countdown = 0;
  client.addEventListener("state", ({ detail }) => {
    clearInterval(countdown);
    status.dataset.state = detail.state;
    if (detail.state === "open") status.textContent = t("connected");
    else if (detail.state === "connecting") status.textContent = t("connecting");
    else if (detail.state === "unauthorized") {
      status.textContent = t("unauthorized");
      onUnauthorized?.();
    } else if (detail.state === "waiting") {
      let left = Math.ceil(detail.retryInMs / 1000);
      status.textContent = t("waiting", { seconds: left });
      countdown = setInterval(() => {
        left = Math.max(0, left - 1);
        status.textContent = t("waiting", { seconds: left });
      }, 1000);
    }
  });
  return client;
}

/** Autosize a textarea and send on Enter (Shift+Enter for a new line; IME composition respected). */
export function composer(form, textarea, onSend) {
  const resize = () => {
    textarea.style.height = "auto";
    textarea.style.height = `${Math.min(textarea.scrollHeight + 2, 144)}px`;
  };
  textarea.addEventListener("input", resize);
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = textarea.value.trim();
    if (!text) return;
    textarea.value = "";
    resize();
    onSend(text);
    textarea.focus();
  });
  return { resize };
}

/**
 * Typing, both ways: tell the other side (chat.typing, at most every 3 s while typing) and show
 * their 302 events for a few seconds in `target` (restoring its text after).
 */
export function typingSignals(client, input, target, { chatId, roleType = 0, nameOf }) {
  let lastSent = 0;
  let timer = 0;
  let saved = null;
  input.addEventListener("input", () => {
    const chat = chatId();
    if (!chat || !input.value || Date.now() - lastSent < 3000) return;
    lastSent = Date.now();
    client.request("chat", "typing", { chat_id: chat, role_type: roleType }).catch(() => {});
  });
  const stop = () => {
    clearTimeout(timer);
    if (saved !== null) target.textContent = saved;
    saved = null;
  };
  client.addEventListener("event", ({ detail: { code, result } }) => {
    if (code !== Code.TYPING || result.chat_id !== chatId() || result.uid === config.me.id) return;
    if (saved === null) saved = target.textContent;
    target.textContent = t("typing", { name: nameOf(result.uid) || t("someone") });
    clearTimeout(timer);
    timer = setTimeout(stop, 4000);
  });
  // A message from them ends their typing.
  client.addEventListener("message", ({ detail: { message } }) => {
    if (message.chat_id === chatId() && message.from_uid !== config.me.id) stop();
  });
  // After a send, the next keystroke starts a new message: tell them at once.
  return { stop, sent: () => { lastSent = 0; } };
}

/** Upload an image (PROTOCOL.md section 6: multipart `file` -> {code: 0, data: {src}}); its URL. */
export async function uploadImage(file) {
  const body = new FormData();
  body.append("file", file);
  let response;
  try {
    response = await fetch(config.upload_url, { method: "POST", body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() } });
  } catch (error) {
    throw new Error(t("upload_failed", { reason: error.message }));
  }
  if (response.status === 404 || response.status === 405) throw new Error(t("upload_missing"));
  let reply;
  try {
    reply = await response.json();
  } catch (error) {
    throw new Error(t("upload_failed", { reason: `HTTP ${response.status}` }));
  }
  if (reply.code === 0 && safeUrl(reply.data?.src)) return reply.data.src;
  throw new Error(t("upload_failed", { reason: reply.msg || `HTTP ${response.status}` }));
}

export function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    location.assign(`/accounts/login/?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error("not logged in");
  }
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

// How a message's `card` (ext) is drawn: set by cards.js; without it the message's text shows.
let cardRenderer = null;
export function setCardRenderer(render) {
  cardRenderer = render;
}

export function isNearBottom(node, slack = 80) {
  return node.scrollHeight - node.scrollTop - node.clientHeight < slack;
}

/**
 * The messages of the open conversation. `sideOf(message)` says "mine", "theirs" or "notice";
 * `loadOlder(page)` returns {rows, total} from user.chatRecord (newest first).
 */
export class MessageList {
  constructor(node, { sideOf, senderName, loadOlder, onRendered }) {
    Object.assign(this, { node, sideOf, senderName, loadOlder, onRendered });
    this.reset(null);
    node.addEventListener("scroll", () => {
      if (node.scrollTop < 60) this.older();
    }, { passive: true });
  }

  reset(chatId) {
    this.chatId = chatId;
    this.byId = new Map(); // msg_id -> element
    this.pending = new Map(); // client_msg_id -> element
    this.page = 0;
    this.done = false;
    this.loading = null;
    this.node.replaceChildren();
  }

  /** Load the first page (or more until the list can scroll). */
  async start() {
    await this.older();
    this.scrollToEnd();
  }

  /** What this page wrote here and the server has not acknowledged yet (offline, say) shows as pending. */
  showUnacknowledged(client) {
    for (const content of client.unacknowledged()) {
      if (content.chat_id === this.chatId) this.addPending({ ...content, createtime: Math.floor(client.serverNow()) });
    }
  }

  async older() {
    if (this.done || this.loading || !this.chatId) return;
    const chatId = this.chatId;
    const edge = el("li", { className: "history-edge", textContent: t("loading_older") });
    this.node.prepend(edge);
    this.loading = (async () => {
      let rows = [];
      let total = 0;
      try {
        ({ rows, total } = await this.loadOlder(this.page + 1));
      } finally {
        edge.remove();
      }
      if (chatId !== this.chatId) return;
      this.page += 1;
      const keep = this.node.scrollHeight - this.node.scrollTop;
      for (const row of rows) this.add(row, { history: true });
      this.done = rows.length === 0 || this.byId.size >= total;
      if (this.done) this.node.prepend(el("li", { className: "history-edge", textContent: t("history_start") }));
      this.node.scrollTop = this.node.scrollHeight - keep;
    })();
    try {
      await this.loading;
    } finally {
      this.loading = null;
    }
    if (!this.done && this.node.scrollHeight <= this.node.clientHeight + 10) await this.older();
  }

  scrollToEnd() {
    this.node.scrollTop = this.node.scrollHeight;
  }

  has(msgId) {
    return this.byId.has(msgId);
  }

  /** Show a message once (by msg_id, or by client_msg_id while it is pending); keeps seq order. */
  add(message, { history = false } = {}) {
    if (message.msg_id != null && this.byId.has(message.msg_id)) return this.byId.get(message.msg_id);
    const stick = !history && isNearBottom(this.node);
    let node = message.client_msg_id ? this.pending.get(message.client_msg_id) : null;
    if (node) {
      // Acknowledged: the pending bubble becomes the stored message, at its place by seq.
      this.pending.delete(message.client_msg_id);
      node.remove();
      node = this.render(message);
      this.insert(node, message.seq);
    } else {
      node = this.render(message);
      this.insert(node, message.seq);
    }
    if (message.msg_id != null) this.byId.set(message.msg_id, node);
    else if (message.client_msg_id) this.pending.set(message.client_msg_id, node);
    if (stick) this.scrollToEnd();
    this.onRendered?.(message, node);
    return node;
  }

  /** A message of ours not yet acknowledged. */
  addPending(message) {
    if (this.pending.has(message.client_msg_id)) return;
    const node = this.render({ ...message, pending: true });
    this.node.append(node);
    this.pending.set(message.client_msg_id, node);
    this.scrollToEnd();
  }

  failed(clientMsgId, reason) {
    const node = this.pending.get(clientMsgId);
    if (!node) return;
    node.classList.remove("pending");
    node.classList.add("failed");
    node.querySelector(".state").textContent = t("not_sent", { reason });
  }

  recalled(msgId) {
    const node = this.byId.get(msgId);
    const text = node?.querySelector(".text, .picture, .card-msg");
    if (!text) return;
    text.replaceWith(el("p", { className: "text recalled", textContent: t("recalled") }));
  }

  insert(node, seq) {
    const items = this.node.querySelectorAll("li.msg");
    if (seq == null) {
      this.node.append(node);
      return;
    }
    for (let index = items.length - 1; index >= 0; index -= 1) {
      const other = items[index];
      const otherSeq = other.dataset.seq ? Number(other.dataset.seq) : Infinity;
      if (otherSeq < seq) {
        other.after(node);
        return;
      }
    }
    const firstMessage = items[0];
    if (firstMessage) firstMessage.before(node);
    else this.node.append(node);
  }

  render(message) {
    const side = message.pending ? "mine" : this.sideOf(message);
    const classes = ["msg", side];
    if (message.pending) classes.push("pending");
    const node = el("li", {
      className: classes.join(" "),
      dataset: { seq: message.seq ?? "", msgId: message.msg_id ?? "", clientMsgId: message.client_msg_id ?? "" },
    });
    const bubble = el("div", { className: "bubble" });
    const name = message.pending ? t("you") : this.senderName(message, side);
    if (side !== "mine") node.append(avatar(message.service_avatar || message.avatar, "avatar small"));
    if (name) bubble.append(el("div", { className: "sender", textContent: name }));
    const card = message.card && cardRenderer ? cardRenderer(message.card) : null;
    if (message.msg_type === MsgType.IMAGE && safeUrl(message.msg)) {
      const link = el("a", { href: message.msg, target: "_blank", rel: "noopener noreferrer" });
      link.append(el("img", { className: "picture", src: message.msg, alt: t("image_alt", { name: name || "" }),
        loading: "lazy" }));
      bubble.append(link);
    } else if (card) {
      bubble.append(card);
    } else {
      bubble.append(el("p", { className: "text", textContent: message.msg ?? "" }));
    }
    const meta = el("div", { className: "meta" });
    meta.append(el("span", { className: "state", textContent: message.pending ? t("sending") : "" }));
    meta.append(timeElement(message.createtime || Math.floor(Date.now() / 1000)));
    bubble.append(meta);
    node.append(bubble);
    return node;
  }
}

export { ChatType, Code, MsgType };
