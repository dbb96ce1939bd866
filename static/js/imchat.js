/**
 * imchat.js: a small, dependency-free client of the imchat wire protocol (PROTOCOL.md), an ES module.
 *
 *   const client = new ImClient({url: "ws://host/ws/", uid: 1001});
 *   client.addEventListener("message", (e) => draw(e.detail.message));
 *   client.start();
 *   const rows = await client.request("user", "recentChat", {is_service: false});
 *   const {clientMsgId, done} = client.sendMessage({chat_type: 1, to_uid: 1002, msg_type: 1, msg: "hi"});
 *
 * What it promises:
 * - one socket at a time; when it drops (close, heartbeat with no PONG, the browser going offline)
 *   it reconnects with exponential backoff and jitter, at once when the browser comes back online;
 * - every request carries a `req_id` and its promise settles with the reply that echoes it;
 * - every message sent carries a `client_msg_id` and stays in an outbox until the server
 *   acknowledges it; after a reconnect the outbox is sent again (the server stores a resend once);
 * - after a reconnect, `chat.sync` with the last seq of every conversation seen (and `since` for the
 *   rest) fetches what was missed; a push whose seq skips ahead syncs that conversation;
 * - messages are handed out once each (deduplicated by `msg_id`), whatever path they came by.
 *
 * Events (EventTarget; `event.detail`):
 *   state    {state: "connecting"|"open"|"waiting"|"unauthorized"|"stopped", retryInMs?}
 *   ready    {reconnected}            the socket is logged in (and, after a reconnect, synced)
 *   message  {message, source: "push"|"own"|"sync"}  a chat message not seen before (200, 307, sync)
 *   ack      {clientMsgId, result}   a sent message was stored (result: msg_id, seq, chat_id, createtime)
 *   failed   {clientMsgId, error}    the server refused a message for good (code 0, -403, -404)
 *   event    {code, result}          server events 301-306, 308-399 (ext)
 *   unauthorized {msg}               the credentials were refused (-200); the client stops
 */

export const Code = Object.freeze({
  OK: 1, BAD_REQUEST: 0, PONG: -1, NOT_LOGGED_IN: -200, FORBIDDEN: -403, NOT_FOUND: -404,
  RATE_LIMITED: -429, SERVER_FAULT: -500, FRIEND_LIST: 100, GROUP_MEMBERS: 101, RECENT_CHATS: 102,
  MESSAGE: 200, CHAT_RECORD: 201, READ: 301, TYPING: 302, RECALLED: 303, AGENT_STATUS: 304,
  SESSION: 305, GROUP: 306, OWN_MESSAGE: 307, SESSION_RATED: 308, NOTE: 309, LABELS: 310, MESSAGE_FLAGGED: 311,
});
export const ChatType = Object.freeze({ PRIVATE: 1, GROUP: 2, SYSTEM: 3, SERVICE: 4 });
export const MsgType = Object.freeze({ TEXT: 1, IMAGE: 2 });

const SUCCESS = new Set([Code.OK, Code.FRIEND_LIST, Code.GROUP_MEMBERS, Code.RECENT_CHATS, Code.CHAT_RECORD]);
const EVENTS = new Set([Code.READ, Code.TYPING, Code.RECALLED, Code.AGENT_STATUS, Code.SESSION, Code.GROUP]);
const PERMANENT = new Set([Code.BAD_REQUEST, Code.FORBIDDEN, Code.NOT_FOUND]);
const CLOSE_NOT_LOGGED_IN = 4401;
const SEEN_LIMIT = 5000;
const SYNC_ROUNDS = 20;

/** A refused request: `code` is the protocol code, or null when the socket dropped or timed out. */
export class ImError extends Error {
  constructor(code, msg, result = null) {
    super(msg || `error ${code}`);
    this.name = "ImError";
    this.code = code;
    this.result = result;
  }

  /** Worth trying again (dropped, timed out, server fault, rate limited). */
  get transient() {
    return this.code === null || this.code === Code.SERVER_FAULT || this.code === Code.RATE_LIMITED;
  }
}

// chat_id forms of PROTOCOL.md section 3.
export const privateChatId = (a, b) => (Number(a) < Number(b) ? `${a}_${b}` : `${b}_${a}`);
export const serviceChatId = (shopId, userId) => `${shopId}____${userId}`;
export const groupChatId = (groupId) => `g${groupId}`;

/** Exponential backoff with "equal jitter": half the ceiling fixed, half random. */
export function backoffDelay(attempt, baseMs, maxMs, random = Math.random) {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** A random id (hex), safe on plain http too (crypto.randomUUID needs a secure context). */
export function randomId(bytes = 12) {
  const buffer = new Uint8Array(bytes);
  crypto.getRandomValues(buffer);
  return Array.from(buffer, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export class ImClient extends EventTarget {
  constructor({
    url, uid = 0, serverTime = 0, heartbeatMs = 20000, pongTimeoutMs = 8000, connectTimeoutMs = 10000,
    requestTimeoutMs = 15000, backoffBaseMs = 500, backoffMaxMs = 10000, WebSocketImpl = globalThis.WebSocket,
  }) {
    super();
    Object.assign(this, { url, uid, heartbeatMs, pongTimeoutMs, connectTimeoutMs, requestTimeoutMs,
      backoffBaseMs, backoffMaxMs, WebSocketImpl });
    // Server clock minus ours, in seconds: `since` is in the server's time.
    this.clockOffset = serverTime ? serverTime - Date.now() / 1000 : 0;
    this.state = "idle";
    this.ws = null;
    this.socketSerial = 0;
    this.ready = false;
    this.everReady = false;
    this.attempt = 0;
    this.timers = { retry: 0, heartbeat: 0, pong: 0, connect: 0 };
    this.reqPrefix = `${randomId(3)}-`;
    this.reqCounter = 0;
    this.pending = new Map(); // req_id -> {resolve, reject, timer}
    this.queue = []; // requests waiting for a ready socket
    this.outbox = new Map(); // client_msg_id -> {content, resolve, reject, inflight}
    this.cursors = new Map(); // chat_id -> highest seq seen
    this.seen = new Set();
    this.lastFrameAt = 0; // server time (s) of the last frame received
    this.onBrowserOnline = () => this.nudge(true);
    this.onBrowserOffline = () => this.checkAlive(3000);
    this.onVisible = () => document.visibilityState === "visible" && this.nudge(false);
  }

  // --- lifecycle ----------------------------------------------------------------------------------

  start() {
    if (this.state !== "idle" && this.state !== "stopped") return;
    globalThis.addEventListener?.("online", this.onBrowserOnline);
    globalThis.addEventListener?.("offline", this.onBrowserOffline);
    globalThis.document?.addEventListener("visibilitychange", this.onVisible);
    this.connect();
  }

  stop() {
    globalThis.removeEventListener?.("online", this.onBrowserOnline);
    globalThis.removeEventListener?.("offline", this.onBrowserOffline);
    globalThis.document?.removeEventListener("visibilitychange", this.onVisible);
    this.dropSocket("stopped");
    clearTimeout(this.timers.retry);
    this.setState("stopped");
  }

  /** Reconnect now if waiting (the network is back); if connected, check the socket still answers. */
  nudge(resetBackoff) {
    if (this.state === "waiting") {
      if (resetBackoff) this.attempt = 0;
      clearTimeout(this.timers.retry);
      this.connect();
    } else if (this.ready) {
      this.checkAlive(3000);
    }
  }

  serverNow() {
    return Date.now() / 1000 + this.clockOffset;
  }

  setState(state, extra = {}) {
    this.state = state;
    this.emit("state", { state, ...extra });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  connect() {
    clearTimeout(this.timers.retry);
    this.setState("connecting");
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (error) {
      this.disconnected("cannot open");
      return;
    }
    this.ws = ws;
    this.socketSerial += 1;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      // Logged in only once the server answers a heartbeat: a refused login gets -200 and a close.
      this.sendRaw("ping");
      this.armPong(this.pongTimeoutMs);
    };
    ws.onmessage = (event) => ws === this.ws && this.onFrame(event.data);
    ws.onclose = (event) => ws === this.ws && this.onClose(event);
    ws.onerror = () => {}; // a close event follows
    this.timers.connect = setTimeout(() => ws === this.ws && !this.ready && this.abandon("connect timeout"),
      this.connectTimeoutMs);
  }

  onClose(event) {
    if (event.code === CLOSE_NOT_LOGGED_IN) {
      this.dropSocket("unauthorized");
      this.setState("unauthorized");
      return;
    }
    this.disconnected(`closed ${event.code}`);
  }

  /** Give up on the current socket without waiting for its close handshake (the network may be gone). */
  abandon(reason) {
    this.disconnected(reason);
  }

  dropSocket(reason) {
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    for (const name of ["heartbeat", "pong", "connect"]) clearTimeout(this.timers[name]);
    clearInterval(this.timers.heartbeat);
    this.timers.pong = 0;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, reason.slice(0, 100));
      } catch (error) {
        /* already closed */
      }
    }
    for (const [reqId, waiter] of this.pending) {
      clearTimeout(waiter.timer);
      waiter.reject(new ImError(null, `disconnected (${reason})`));
      this.pending.delete(reqId);
    }
    for (const entry of this.outbox.values()) entry.inflight = 0;
  }

  disconnected(reason) {
    this.dropSocket(reason);
    const delay = backoffDelay(this.attempt, this.backoffBaseMs, this.backoffMaxMs);
    this.attempt += 1;
    this.setState("waiting", { retryInMs: delay, reason });
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  async becameReady() {
    clearTimeout(this.timers.connect);
    const reconnected = this.everReady;
    this.ready = true;
    this.everReady = true;
    this.setState("open");
    clearInterval(this.timers.heartbeat);
    this.timers.heartbeat = setInterval(() => this.checkAlive(this.pongTimeoutMs), this.heartbeatMs);
    const serial = this.socketSerial;
    if (reconnected) {
      try {
        await this.sync();
      } catch (error) {
        if (serial !== this.socketSerial) return; // dropped again meanwhile; the next ready retries
      }
    }
    if (serial !== this.socketSerial || !this.ready) return;
    this.attempt = 0;
    for (const entry of this.outbox.values()) this.sendOutboxEntry(entry);
    const queued = this.queue.splice(0);
    for (const item of queued) this.transmit(item);
    this.emit("ready", { reconnected });
  }

  // --- heartbeat ----------------------------------------------------------------------------------

  armPong(timeoutMs) {
    clearTimeout(this.timers.pong);
    this.timers.pong = setTimeout(() => this.abandon("no PONG"), timeoutMs);
  }

  /** Send a heartbeat; no PONG within `timeoutMs` means the socket is dead (reconnect). */
  checkAlive(timeoutMs) {
    if (!this.ready || this.timers.pong) return;
    if (this.sendRaw("ping")) this.armPong(timeoutMs);
  }

  // --- frames -------------------------------------------------------------------------------------

  sendRaw(text) {
    try {
      this.ws.send(text);
      return true;
    } catch (error) {
      this.abandon("send failed");
      return false;
    }
  }

  onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch (error) {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    this.lastFrameAt = this.serverNow();
    const { code, result } = frame;
    if (code === Code.PONG) {
      clearTimeout(this.timers.pong);
      this.timers.pong = 0;
      if (!this.ready) this.becameReady();
      return;
    }
    if (code === Code.NOT_LOGGED_IN) {
      this.emit("unauthorized", { msg: frame.msg });
      return;
    }
    if (frame.req_id != null && this.pending.has(frame.req_id)) {
      const waiter = this.pending.get(frame.req_id);
      this.pending.delete(frame.req_id);
      clearTimeout(waiter.timer);
      if (SUCCESS.has(code)) waiter.resolve(result);
      else waiter.reject(new ImError(code, frame.msg, result));
      return;
    }
    if (code === Code.MESSAGE || code === Code.OWN_MESSAGE) {
      this.incoming(result, code === Code.OWN_MESSAGE ? "own" : "push");
    } else if (EVENTS.has(code) || (code > 307 && code < 400)) { // and the ext events after 307
      this.emit("event", { code, result });
    }
  }

  // --- requests -----------------------------------------------------------------------------------

  /** Send `{class, action, content, req_id}`; resolves with the reply's result, rejects with ImError. */
  request(cls, action, content = {}, { timeoutMs = this.requestTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      const item = { frame: { class: cls, action, content }, resolve, reject, timeoutMs };
      if (this.ready) this.transmit(item);
      else this.queue.push(item);
    });
  }

  /** Send now on the current socket, skipping the queue (used while resyncing). */
  requestNow(cls, action, content = {}, { timeoutMs = this.requestTimeoutMs } = {}) {
    return new Promise((resolve, reject) => {
      this.transmit({ frame: { class: cls, action, content }, resolve, reject, timeoutMs });
    });
  }

  transmit({ frame, resolve, reject, timeoutMs }) {
    if (!this.ws) {
      reject(new ImError(null, "not connected"));
      return;
    }
    this.reqCounter += 1;
    const reqId = this.reqPrefix + this.reqCounter;
    const timer = setTimeout(() => {
      if (!this.pending.delete(reqId)) return;
      reject(new ImError(null, "no reply in time"));
      this.checkAlive(3000);
    }, timeoutMs);
    this.pending.set(reqId, { resolve, reject, timer });
    this.sendRaw(JSON.stringify({ ...frame, req_id: reqId }));
  }

  // --- messages -----------------------------------------------------------------------------------

  /**
   * Send a chat message (content as chat.sendMsg's). Returns {clientMsgId, done}: `done` resolves
   * with the stored message's {msg_id, seq, chat_id, createtime} once acknowledged, however many
   * reconnects that takes, and rejects only when the server refuses it for good.
   */
  sendMessage(content) {
    const clientMsgId = content.client_msg_id || `${randomId(12)}${Date.now().toString(36)}`;
    const entry = { content: { chat_id: "", shop_id: 0, role_type: 0, ...content, client_msg_id: clientMsgId },
      inflight: 0 };
    const done = new Promise((resolve, reject) => {
      entry.resolve = resolve;
      entry.reject = reject;
    });
    done.catch(() => {}); // the caller may only listen to events
    this.outbox.set(clientMsgId, entry);
    if (this.ready) this.sendOutboxEntry(entry);
    return { clientMsgId, done };
  }

  /** Messages sent but not yet acknowledged, oldest first (e.g. to show them as pending). */
  unacknowledged() {
    return Array.from(this.outbox.values(), (entry) => entry.content);
  }

  sendOutboxEntry(entry) {
    if (entry.inflight === this.socketSerial) return;
    entry.inflight = this.socketSerial;
    const clientMsgId = entry.content.client_msg_id;
    this.requestNow("chat", "sendMsg", entry.content).then(
      (result) => this.acknowledge(clientMsgId, result),
      (error) => {
        if (!this.outbox.has(clientMsgId)) return;
        entry.inflight = 0;
        if (PERMANENT.has(error.code)) {
          this.outbox.delete(clientMsgId);
          entry.reject(error);
          this.emit("failed", { clientMsgId, error });
        } else if (error.code !== null && this.ready) {
          // Rate limited or a server fault: nothing was stored; try again shortly on this socket.
          const wait = error.code === Code.RATE_LIMITED ? (error.result?.retry_after ?? 1) * 1000 : 2000;
          setTimeout(() => this.outbox.has(clientMsgId) && this.ready && this.sendOutboxEntry(entry), wait);
        } // dropped or timed out: resent after the next reconnect
      },
    );
  }

  acknowledge(clientMsgId, result) {
    const entry = this.outbox.get(clientMsgId);
    if (!entry) return;
    this.outbox.delete(clientMsgId);
    this.markSeen(result.msg_id);
    this.advance(result.chat_id, result.seq, "ack");
    entry.resolve(result);
    this.emit("ack", { clientMsgId, result, content: entry.content });
  }

  markSeen(msgId) {
    if (msgId == null || this.seen.has(msgId)) return false;
    this.seen.add(msgId);
    if (this.seen.size > SEEN_LIMIT) this.seen.delete(this.seen.values().next().value);
    return true;
  }

  /** Record history the page loaded itself, so later pushes and syncs of it are not handed out again. */
  observe(rows) {
    for (const row of rows) {
      this.markSeen(row.msg_id);
      this.advance(row.chat_id, row.seq, "history");
    }
  }

  incoming(message, source) {
    if (!message || message.msg_id == null) return;
    if (!this.markSeen(message.msg_id)) return;
    // Our own message came back (sync after a lost ack, or another path) before its ack.
    if (message.client_msg_id && this.outbox.has(message.client_msg_id)) {
      this.acknowledge(message.client_msg_id, message);
      return;
    }
    this.advance(message.chat_id, message.seq, source);
    this.emit("message", { message, source });
  }

  advance(chatId, seq, source) {
    if (!chatId || typeof seq !== "number") return;
    const have = this.cursors.get(chatId);
    // A push, an echo of our own message or an ack that skips ahead: fetch what lies between (an
    // ack may land on a new socket before the sync of what the old one missed).
    if (have !== undefined && seq > have + 1 && source !== "sync" && source !== "history") {
      this.syncChats({ [chatId]: have }).catch(() => {});
    }
    if (have === undefined || seq > have) this.cursors.set(chatId, seq);
  }

  /** Fetch what was missed: every known conversation past its cursor, and others since the last frame. */
  async sync() {
    const since = Math.floor((this.lastFrameAt || this.serverNow()) - 10);
    return this.syncChats(null, since);
  }

  async syncChats(only, since = null) {
    for (let round = 0; round < SYNC_ROUNDS; round += 1) {
      const chats = only || Object.fromEntries(this.cursors);
      const content = { chats, limit: 200 };
      if (since !== null) content.since = since;
      const result = await this.requestNow("chat", "sync", content);
      for (const message of result.messages) {
        this.incoming(message, "sync");
        if (only && message.chat_id in only) only[message.chat_id] = Math.max(only[message.chat_id], message.seq);
      }
      if (!result.more) return;
    }
  }
}
