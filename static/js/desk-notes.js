// The workspace's desk: private notes (309), labels on sessions (310) with a list filter, and the
// `/shortcut` canned-reply picker in the reply box. Installed by workspace.js with a few hooks.
// Everything from users goes into the page as text (el() never parses HTML).

import { Code, el, timeElement } from "./ui.js";

const $ = (id) => document.getElementById(id);
const SLASH = /(^|\s)\/([\w-]*)$/; // a `/word` right before the caret

/** A coloured chip for a label; `onRemove` adds a × button. */
function chip(label, { onRemove, removeText } = {}) {
  const node = el("li", { className: "label-chip", style: `--label:${safeColor(label.color)}` },
    el("span", { className: "label-dot", "aria-hidden": "true" }), label.name);
  if (onRemove) {
    const button = el("button", { type: "button", className: "label-remove",
      "aria-label": removeText.replace("{name}", label.name), title: removeText.replace("{name}", label.name) }, "×");
    button.addEventListener("click", onRemove);
    node.append(button);
  }
  return node;
}

function safeColor(color) {
  return /^#[0-9a-fA-F]{6}$/.test(color || "") ? color : "#64748b";
}

/**
 * @param {object} hooks
 *   client, input (the reply textarea), state() (the workspace state), active() (the open chat or null),
 *   changed() (re-render the lists), banner(text)
 */
export function installDesk({ client, input, state, active, changed, banner }) {
  const filter = new Set(); // label ids the lists are narrowed to
  let openLabels = []; // labels of the open conversation's session
  let replies = []; // canned replies rendered for the open conversation
  let matches = [];
  let selected = 0;

  const labelsBox = $("desk-labels");
  const chips = $("desk-label-chips");
  const addButton = $("desk-label-add");
  const menu = $("desk-label-menu");
  const noteList = $("desk-note-list");
  const noteForm = $("desk-note-form");
  const noteInput = $("desk-note-input");
  const notesBox = $("desk-notes");
  const picker = $("canned-picker");

  const shopLabels = (shopId) => (state().labels || []).filter((label) => label.shop_id === shopId);
  const labelById = (id) => (state().labels || []).find((label) => label.id === id);

  // --- labels: the list filter and the chips in each row ----------------------------------------

  function renderFilter() {
    const box = $("label-filter");
    const labels = state().labels || [];
    box.hidden = !labels.length;
    for (const id of [...filter]) if (!labelById(id)) filter.delete(id);
    $("label-filter-chips").replaceChildren(...labels.map((label) => {
      const button = el("button", { type: "button", className: "filter-chip", style: `--label:${safeColor(label.color)}`,
        "aria-pressed": String(filter.has(label.id)), dataset: { labelId: String(label.id) } },
      el("span", { className: "label-dot", "aria-hidden": "true" }), label.name);
      button.addEventListener("click", () => {
        if (filter.has(label.id)) filter.delete(label.id);
        else filter.add(label.id);
        changed();
      });
      return button;
    }));
  }

  /** Whether a list row passes the label filter (rows without labels, e.g. recent ones, only with no filter). */
  function shows(session) {
    if (!filter.size) return true;
    return (session.labels || []).some((id) => filter.has(id));
  }

  /** The label chips of a row of the lists (or null). */
  function rowChips(session) {
    const labels = (session.labels || []).map(labelById).filter(Boolean);
    if (!labels.length) return null;
    return el("ul", { className: "label-chips small conv-labels" }, ...labels.map((label) => chip(label)));
  }

  // --- labels of the open conversation ------------------------------------------------------------

  function renderOpenLabels() {
    const target = active();
    labelsBox.hidden = !target;
    if (!target) return;
    chips.replaceChildren(...openLabels.map((label) => chip(label, {
      removeText: labelsBox.dataset.remove, onRemove: () => changeLabels({ remove: [label.id] }),
    })));
  }

  function showMenu(show) {
    const target = active();
    menu.hidden = !show;
    addButton.setAttribute("aria-expanded", String(show));
    if (!show || !target) return;
    const have = new Set(openLabels.map((label) => label.id));
    const options = shopLabels(target.shopId).filter((label) => !have.has(label.id));
    menu.replaceChildren(...options.map((label) => {
      const item = el("button", { type: "button", role: "menuitem", className: "label-option",
        style: `--label:${safeColor(label.color)}` }, el("span", { className: "label-dot", "aria-hidden": "true" }), label.name);
      item.addEventListener("click", () => {
        showMenu(false);
        changeLabels({ add: [label.id] });
      });
      return el("li", { role: "none" }, item);
    }));
    if (!options.length) menu.append(el("li", { className: "hint" }, shopLabels(target.shopId).length ? "—" : labelsBox.dataset.none));
    menu.querySelector("button")?.focus();
  }

  addButton.addEventListener("click", () => showMenu(menu.hidden));
  menu.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      showMenu(false);
      addButton.focus();
    }
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && event.target !== addButton) showMenu(false);
  });

  function applyLabels(result) {
    const session = state().sessions.find((item) => item.chat_id === result.chat_id);
    if (session) session.labels = result.labels.map((label) => label.id);
    if (active()?.chatId === result.chat_id) {
      openLabels = result.labels;
      renderOpenLabels();
    }
    changed();
  }

  async function changeLabels(change) {
    const target = active();
    if (!target) return;
    try {
      applyLabels(await client.request("service", "label", { chat_id: target.chatId, ...change }));
    } catch (error) {
      banner(error.message);
    }
  }

  // --- notes --------------------------------------------------------------------------------------

  function noteItem(note) {
    return el("li", { className: "note", dataset: { noteId: String(note.id) } },
      el("p", { className: "note-text" }, note.text),
      el("p", { className: "note-meta" }, el("strong", {}, note.author_name || "—"), " · ", timeElement(note.createtime)));
  }

  function renderNotes(notes) {
    noteList.replaceChildren(...notes.map(noteItem));
    if (!notes.length) noteList.append(el("li", { className: "empty" }, notesBox.dataset.empty));
  }

  function addNote(note) {
    if (noteList.querySelector(`[data-note-id="${note.id}"]`)) return;
    noteList.querySelector(".empty")?.remove();
    noteList.append(noteItem(note));
    noteList.lastElementChild.scrollIntoView({ block: "nearest" });
  }

  noteForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const target = active();
    const text = noteInput.value.trim();
    if (!target || !text) return;
    noteInput.disabled = true;
    try {
      addNote(await client.request("service", "note", { chat_id: target.chatId, text }));
      noteInput.value = "";
    } catch (error) {
      banner(error.message);
    } finally {
      noteInput.disabled = false;
      noteInput.focus();
    }
  });
  noteInput.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) noteForm.requestSubmit();
  });

  // --- the canned-reply picker --------------------------------------------------------------------

  function slashWord() {
    const before = input.value.slice(0, input.selectionStart ?? input.value.length);
    const match = before.match(SLASH);
    return match ? { word: match[2].toLowerCase(), start: before.length - match[2].length - 1 } : null;
  }

  function closePicker() {
    picker.hidden = true;
    matches = [];
    input.setAttribute("aria-expanded", "false");
  }

  function renderPicker() {
    const slash = slashWord();
    if (!slash || !active()) {
      closePicker();
      return;
    }
    matches = replies.filter((reply) => (reply.shortcut || "").startsWith(slash.word) ||
      (!slash.word || reply.title.toLowerCase().includes(slash.word)));
    matches.sort((a, b) => Number(!(a.shortcut || "").startsWith(slash.word)) - Number(!(b.shortcut || "").startsWith(slash.word)));
    if (!matches.length) {
      closePicker();
      return;
    }
    selected = Math.min(selected, matches.length - 1);
    picker.replaceChildren(...matches.map((reply, index) => {
      const item = el("li", { role: "option", id: `canned-${reply.id}`, className: "canned-option",
        "aria-selected": String(index === selected) },
      el("span", { className: "canned-head" }, reply.shortcut ? el("code", {}, `/${reply.shortcut}`) : null,
        el("strong", {}, reply.title)),
      el("span", { className: "canned-text" }, reply.text));
      item.addEventListener("mousedown", (event) => {
        event.preventDefault(); // keep the focus in the reply box
        expand(reply);
      });
      return item;
    }), el("li", { className: "canned-hint", "aria-hidden": "true" }, picker.dataset.hint));
    picker.hidden = false;
    input.setAttribute("aria-expanded", "true");
    input.setAttribute("aria-activedescendant", `canned-${matches[selected].id}`);
  }

  function expand(reply) {
    const slash = slashWord();
    const caret = input.selectionStart ?? input.value.length;
    const start = slash ? slash.start : caret;
    input.value = input.value.slice(0, start) + reply.text + input.value.slice(caret);
    const end = start + reply.text.length;
    input.setSelectionRange(end, end);
    closePicker();
    input.dispatchEvent(new Event("input"));
    input.focus();
  }

  input.setAttribute("aria-controls", "canned-picker");
  input.setAttribute("aria-autocomplete", "list");
  input.addEventListener("input", () => {
    selected = 0;
    renderPicker();
  });
  input.addEventListener("blur", () => setTimeout(() => {
    if (document.activeElement !== input) closePicker();
  }, 150));
  // Capture: the picker takes Enter and Tab before the composer sends.
  input.addEventListener("keydown", (event) => {
    if (picker.hidden || !matches.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      selected = (selected + (event.key === "ArrowDown" ? 1 : matches.length - 1)) % matches.length;
      renderPicker();
    } else if ((event.key === "Enter" && !event.shiftKey && !event.isComposing) || event.key === "Tab") {
      const slash = slashWord();
      const exact = slash && matches.find((reply) => reply.shortcut === slash.word);
      expand(exact || matches[selected]);
    } else if (event.key === "Escape") {
      closePicker();
    } else return;
    event.preventDefault();
    event.stopImmediatePropagation();
  }, true);

  // --- opening a conversation and live events -----------------------------------------------------

  async function open(target) {
    openLabels = [];
    replies = [];
    closePicker();
    showMenu(false);
    renderOpenLabels();
    renderNotes([]);
    const chatId = target.chatId;
    const [labels, notes, canned] = await Promise.allSettled([
      client.request("service", "label", { chat_id: chatId }),
      client.request("service", "notes", { chat_id: chatId }),
      client.request("service", "cannedReplies", { chat_id: chatId }),
    ]);
    if (active()?.chatId !== chatId) return;
    if (labels.status === "fulfilled") applyLabels(labels.value);
    if (notes.status === "fulfilled") renderNotes(notes.value.notes);
    if (canned.status === "fulfilled") {
      replies = canned.value.replies;
      if (document.activeElement === input) renderPicker(); // "/" typed before they arrived
    }
  }

  client.addEventListener("event", ({ detail: { code, result } }) => {
    if (code === Code.NOTE && active()?.chatId === result.chat_id) addNote(result.note);
    else if (code === Code.LABELS) applyLabels(result);
  });

  /** A quick reply's text filled for the open conversation (as written until the fill arrives). */
  function textOf(reply) {
    return replies.find((item) => item.id === reply.id)?.text ?? reply.text;
  }

  return { open, shows, rowChips, renderFilter, textOf };
}
