// The workspace in a background tab: a title badge counting what arrived while it was hidden, and
// (once the agent turned them on with the button, a user gesture) the browser's notifications for a
// customer's message or a new conversation. Clicking one brings the tab forward at that conversation.
// When the tab is closed altogether, the mall's `notification.offline` webhook takes over (server side).

import { t } from "./ui.js";

const STORAGE_KEY = "imchat.workspace.notifications"; // "on" | "off"
const supported = typeof window.Notification === "function";

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function remember(value) {
  try {
    localStorage.setItem(STORAGE_KEY, value);
  } catch {
    // private browsing: the choice lasts as long as the page
  }
}

/** `open({chatId, shopId, consumerId, title, avatar})` shows a conversation; returns the alert hooks. */
export function installAlerts({ button, open }) {
  const baseTitle = document.title;
  let unseen = 0;
  let wanted = stored() === "on";

  const hidden = () => document.visibilityState === "hidden";
  const granted = () => supported && Notification.permission === "granted";

  function renderButton() {
    if (!button) return;
    button.hidden = !supported;
    const on = wanted && granted();
    const blocked = supported && Notification.permission === "denied";
    button.textContent = blocked ? t("notify_blocked") : on ? t("notify_disable") : t("notify_enable");
    button.disabled = blocked;
    button.setAttribute("aria-pressed", String(on));
  }

  function renderTitle() {
    document.title = unseen ? `(${unseen}) ${baseTitle}` : baseTitle;
  }

  button?.addEventListener("click", async () => {
    if (wanted && granted()) {
      wanted = false;
      remember("off");
    } else {
      const permission = granted() ? "granted" : await Notification.requestPermission();
      wanted = permission === "granted";
      remember(wanted ? "on" : "off");
    }
    renderButton();
  });

  document.addEventListener("visibilitychange", () => {
    if (!hidden()) {
      unseen = 0;
      renderTitle();
    }
  });

  function notify(title, body, target) {
    if (!hidden()) return;
    unseen += 1;
    renderTitle();
    if (!wanted || !granted()) return;
    try {
      const note = new Notification(title, { body, tag: target.chatId, icon: target.avatar || undefined });
      note.addEventListener("click", () => {
        window.focus();
        note.close();
        open(target);
      });
    } catch {
      // some mobile browsers allow notifications only from a service worker: the badge stays
    }
  }

  renderButton();
  return {
    /** A customer's message (a 200 from the consumer of a conversation this desk serves). */
    message(m, target, text) {
      notify(m.nickname, text, target);
    },
    /** A conversation given to this agent (305 assigned or transferred to them). */
    session(target) {
      notify(t("notify_new_session"), t("notify_new_session_body", { name: target.title }), target);
    },
  };
}
