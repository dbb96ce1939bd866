// A shop's business hours on the consumer's chat page: "Closed now · opens Mon 7 Dec 09:00" under
// the conversation's header, read with service.shopInfo when a shop's conversation opens.

import { el, t } from "./ui.js";

const when = new Intl.DateTimeFormat(document.documentElement.lang || undefined,
  { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });

function note() {
  let node = document.getElementById("shop-hours");
  if (!node) {
    node = el("p", { className: "banner hours-note", id: "shop-hours", role: "status", hidden: true });
    document.getElementById("banner").after(node);
  }
  return node;
}

export function hideShopHours() {
  note().hidden = true;
}

/** Show whether the shop is closed now and when it opens; `isCurrent()` drops a late answer. */
export async function showShopHours(client, shopId, isCurrent = () => true) {
  const node = note();
  node.hidden = true;
  let info;
  try {
    info = await client.request("service", "shopInfo", { shop_id: shopId });
  } catch (error) {
    return null; // the note is a nicety
  }
  if (!isCurrent()) return info;
  node.dataset.openNow = String(info.open_now);
  if (!info.open_now) {
    node.textContent = info.next_opening
      ? t("shop_closed_until", { when: when.format(new Date(info.next_opening * 1000)) })
      : t("shop_closed");
    node.hidden = false;
  }
  return info;
}
