// The workspace's search box: service.search over the socket, hits with the match marked, a click
// opens the conversation (and shows the message found). Snippets are text: marks are <mark>
// elements around textContent, never HTML from the server.

import { avatar, el, t, timeElement } from "./ui.js";

const $ = (id) => document.getElementById(id);

/** `snippet` with each [start, end) of `marks` (Unicode code points) in a <mark>. */
export function markedText(snippet, marks) {
  const chars = Array.from(snippet);
  const node = el("span", { className: "preview" });
  let at = 0;
  for (const [start, end] of marks) {
    if (start < at || end <= start) continue;
    node.append(chars.slice(at, start).join(""), el("mark", {}, chars.slice(start, end).join("")));
    at = end;
  }
  node.append(chars.slice(at).join(""));
  return node;
}

/** Load older pages of `messages` until `msgId` is shown (a few pages at most), then point at it. */
export async function revealMessage(messages, msgId, maxPages = 5) {
  for (let page = 0; page < maxPages && !messages.has(msgId) && !messages.done; page += 1) {
    await messages.older();
  }
  const node = messages.byId.get(msgId);
  if (!node) return false;
  for (const other of messages.node.querySelectorAll(".search-hit")) other.classList.remove("search-hit");
  node.classList.add("search-hit");
  node.scrollIntoView({ block: "center" });
  return true;
}

/**
 * Wire the search box of templates/customer_service/desk_search.html.
 * `open({chatId, shopId, consumerId, title, avatar, msgId})` opens a conversation (msgId may be null).
 */
export function mountSearch({ client, open }) {
  const form = $("search-form");
  if (!form) return;
  const input = $("search-input");
  const shop = $("search-shop");
  const output = $("search-output");
  const status = $("search-status");
  const results = $("search-results");
  const customers = $("search-customers");
  const more = $("search-more");
  let current = null; // {q, shop_id, page}

  function hitRow(hit) {
    const button = el("button", { type: "button", className: "conv search-hit-row",
      dataset: { chatId: hit.chat_id, msgId: hit.msg_id } });
    button.append(avatar(hit.avatar), el("span", { className: "name" }, hit.name || `#${hit.uid}`),
      timeElement(hit.createtime, { short: true }), markedText(hit.snippet, hit.marks));
    button.addEventListener("click", () => open({ chatId: hit.chat_id, shopId: hit.shop_id, consumerId: hit.uid,
      title: hit.name || `#${hit.uid}`, avatar: hit.avatar, msgId: hit.msg_id }));
    return el("li", {}, button);
  }

  function customerRow(customer) {
    const button = el("button", { type: "button", className: "conv", dataset: { chatId: customer.chat_id } });
    const name = el("span", { className: "name" }, customer.name);
    name.append(el("span", { className: "tag" }, t("search_customer")));
    button.append(avatar(customer.avatar), name, timeElement(customer.last_time, { short: true }),
      el("span", { className: "preview" }, `@${customer.username}`));
    button.addEventListener("click", () => open({ chatId: customer.chat_id, shopId: customer.shop_id,
      consumerId: customer.uid, title: customer.name, avatar: customer.avatar, msgId: null }));
    return el("li", {}, button);
  }

  async function run(page) {
    const content = { q: current.q, page };
    if (current.shopId) content.shop_id = current.shopId;
    output.hidden = false;
    status.textContent = t("search_running");
    more.hidden = true;
    try {
      const result = await client.request("service", "search", content);
      if (page === 1) {
        results.replaceChildren();
        customers.replaceChildren(...result.customers.map(customerRow));
      }
      results.append(...result.hits.map(hitRow));
      const shown = results.children.length;
      status.textContent = shown || result.customers.length
        ? t(result.recent_only ? "search_found_recent" : "search_found", { count: shown })
        : t(result.recent_only ? "search_none_recent" : "search_none");
      more.hidden = !result.has_more;
      current.page = page;
    } catch (error) {
      status.textContent = t("error", { reason: error.message });
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = input.value.trim();
    if (!q) return;
    current = { q, shopId: shop?.value ? Number(shop.value) : null, page: 1 };
    run(1);
  });
  more.addEventListener("click", () => current && run(current.page + 1));
  $("search-clear").addEventListener("click", () => {
    current = null;
    input.value = "";
    results.replaceChildren();
    customers.replaceChildren();
    output.hidden = true;
    input.focus();
  });
}
