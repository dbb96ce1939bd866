// Product and order cards (ext; chat/cards.py): drawn inside a message bubble, and offered for
// sending when the mall hands a signed card over in the page's URL (?card=<base64url JSON>; the
// server verified it before the page got it). Text goes in through textContent only; links and
// images only when they are http(s).

import { config, el, safeUrl, setCardRenderer, t } from "./ui.js";

const CURRENCY = "¥";

function money(amount) {
  return `${CURRENCY}${amount}`;
}

function openLink(url, label) {
  if (!safeUrl(url)) return null;
  return el("a", { className: "button card-link", href: url, target: "_blank", rel: "noopener noreferrer" }, label);
}

function productCard(card) {
  const node = el("div", { className: "card-msg card-product", dataset: { kind: "product", cardId: card.id } });
  if (safeUrl(card.image)) node.append(el("img", { className: "card-image", src: card.image, alt: "", loading: "lazy" }));
  node.append(el("div", { className: "card-body" },
    el("span", { className: "card-label" }, t("card_product")),
    el("p", { className: "card-title" }, card.title),
    el("p", { className: "card-price" }, money(card.price)),
    openLink(card.link, t("card_open_product"))));
  return node;
}

function orderCard(card) {
  const items = (Array.isArray(card.items) ? card.items : []).map((item) => el("li", {},
    el("span", { className: "card-item-title" }, item.title),
    el("span", { className: "card-item-quantity" }, t("card_quantity", { quantity: item.quantity })),
    el("span", { className: "card-item-price" }, money(item.price))));
  return el("div", { className: "card-msg card-order", dataset: { kind: "order", cardId: card.id } },
    el("div", { className: "card-head" },
      el("span", { className: "card-label" }, t("card_order", { id: card.id })),
      el("span", { className: "card-status" }, card.status)),
    el("ul", { className: "card-items" }, ...items),
    el("p", { className: "card-total" }, t("card_total", { amount: money(card.total) })),
    openLink(card.link, t("card_open_order")));
}

/** A card's element, or null for a kind this page does not know (the message's text shows then). */
export function renderCard(card) {
  if (card?.kind === "product") return productCard(card);
  if (card?.kind === "order") return orderCard(card);
  return null;
}

setCardRenderer(renderCard);

/**
 * The card handed over in the URL, shown above `composer` with a button that sends it:
 * `send(signedCard)` is called once a conversation is open (`canSend()`); a card the server could
 * not verify shows why instead.
 */
export function offerCard(composer, { canSend, send }) {
  if (config.offer_card_error) {
    composer.before(el("p", { className: "banner card-offer-error", id: "card-offer-error", role: "alert" },
      t("card_refused", { reason: config.offer_card_error })));
    return;
  }
  const offer = config.offer_card;
  if (!offer) return;
  const label = offer.shown.kind === "product" ? t("card_ask_product") : t("card_send_order");
  const note = el("p", { className: "card-offer-note", role: "status", hidden: true });
  const button = el("button", { type: "button", className: "primary", id: "card-offer-send" }, label);
  const dismiss = el("button", { type: "button", id: "card-offer-dismiss" }, t("card_dismiss"));
  const panel = el("div", { className: "card-offer", id: "card-offer" }, renderCard(offer.shown),
    el("div", { className: "card-offer-actions" }, button, dismiss), note);
  button.addEventListener("click", () => {
    if (!canSend()) {
      note.textContent = t("card_pick_conversation");
      note.hidden = false;
      return;
    }
    send(offer.signed);
    panel.remove();
  });
  dismiss.addEventListener("click", () => panel.remove());
  composer.before(panel);
}
