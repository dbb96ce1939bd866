// The consumer's rating of a closed customer-service session (CSAT, PROTOCOL-EXT.md): offered after
// the 305 `closed`, and when a conversation whose last session waits for a rating is opened.

import { Code, getJson } from "./ui.js";

const $ = (id) => document.getElementById(id);

/** A rating widget above the composer; `opened(chatId)` when the page shows a conversation. */
export function ratingWidget({ client, pendingUrl }) {
  const template = $("csat-template");
  const pending = new Map(); // chat_id -> {session_id, rate_until}
  let activeChat = null;
  let node = null;

  const clone = (selector) => template.content.querySelector(selector).cloneNode(true);

  function remove() {
    node?.remove();
    node = null;
  }

  function place(element) {
    remove();
    node = element;
    $("composer").before(node);
  }

  function offer() {
    const wanted = pending.get(activeChat);
    if (!wanted || wanted.rate_until < client.serverNow()) {
      remove();
      return;
    }
    if (node?.dataset.sessionId === String(wanted.session_id)) return;
    const form = clone("form.csat");
    form.dataset.sessionId = String(wanted.session_id);
    const error = form.querySelector(".form-error");
    form.querySelector("[data-csat-dismiss]").addEventListener("click", () => {
      pending.delete(activeChat);
      remove();
    });
    form.addEventListener("change", () => {
      const score = Number(form.elements.score.value || 0);
      form.querySelectorAll(".csat-star").forEach((star, index) => star.classList.toggle("on", index < score));
    });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const score = Number(form.elements.score.value || 0);
      if (!score) {
        error.textContent = clone("[data-csat-pick-score]").textContent;
        error.hidden = false;
        return;
      }
      form.querySelector("[data-csat-submit]").disabled = true;
      try {
        await client.request("service", "rate", { session_id: wanted.session_id, score,
          comment: form.elements.comment.value.trim() });
        pending.delete(activeChat);
        place(clone("[data-csat-thanks]"));
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
        form.querySelector("[data-csat-submit]").disabled = false;
      }
    });
    place(form);
  }

  async function loadPending() {
    try {
      const reply = await getJson(pendingUrl);
      for (const row of reply.result) pending.set(row.chat_id, row);
      offer();
    } catch (error) {
      /* the rating is a nicety: without the list, the next 305 closed still offers it */
    }
  }

  client.addEventListener("event", ({ detail: { code, result } }) => {
    if (code === Code.SESSION && result.event === "closed" && result.session_id) {
      pending.set(result.chat_id, { session_id: result.session_id, rate_until: result.rate_until });
    } else if (code === Code.SESSION && (result.event === "queued" || result.event === "assigned")) {
      pending.delete(result.chat_id); // a new session: the page offers only the latest one
    } else if (code === Code.SESSION_RATED) {
      pending.delete(result.chat_id); // rated on another device
    } else {
      return;
    }
    if (result.chat_id === activeChat && !node?.matches("[data-csat-thanks]")) offer();
  });
  client.addEventListener("ready", loadPending, { once: true });

  return {
    opened(chatId) {
      activeChat = chatId;
      remove();
      offer();
    },
  };
}
