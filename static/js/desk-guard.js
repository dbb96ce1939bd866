// The contact guard in the workspace: a message the guard flagged (a 311 now, or `guard` on a
// history row later) gets a warning badge naming what it found (phone, WeChat, QQ, e-mail, link).

import { Code, el, t } from "./ui.js";

export const FLAGGED = Code.MESSAGE_FLAGGED;
const flagged = new Map(); // msg_id -> kinds

function badge(node, kinds) {
  if (!node || !kinds?.length) return;
  node.classList.add("flagged");
  const bubble = node.querySelector(".bubble");
  if (!bubble || bubble.querySelector(".guard-badge")) return;
  const names = kinds.map((kind) => t(`guard_${kind}`)).join(", ");
  bubble.prepend(el("p", { className: "guard-badge", role: "note", title: t("guard_title") },
    el("span", { "aria-hidden": "true" }, "⚠ "), t("guard_found", { kinds: names })));
}

/** The MessageList's `onRendered`: badge a message known to be flagged (a history row says so itself). */
export function guardRendered(message, node) {
  if (message.guard?.length) flagged.set(message.msg_id, message.guard);
  badge(node, flagged.get(message.msg_id));
}

/** Badge messages as the shop's 311s arrive (the bubble may come before or after its 311). */
export function watchGuard(client, messages) {
  client.addEventListener("event", ({ detail: { code, result } }) => {
    if (code !== FLAGGED) return;
    flagged.set(result.msg_id, result.kinds);
    badge(messages.byId.get(result.msg_id), result.kinds);
  });
}
