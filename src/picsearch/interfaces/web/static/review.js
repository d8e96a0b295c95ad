// picsearch review page: arrow keys move through the grid, C clears the focused photo, K keeps it hidden.
// Decisions go to /review/api/decisions as JSON (same-origin, the session cookie rides along).
"use strict";

(function () {
  const grid = document.getElementById("review-grid");
  if (!grid || !window.fetch) return;
  const remaining = document.getElementById("remaining");
  const reviewed = document.getElementById("reviewed");
  const reason = document.getElementById("reason");
  const cards = () => [...grid.querySelectorAll(".review-card")];
  const LABELS = { clear: "cleared", flag: "kept hidden" };

  function columns() {
    const list = cards();
    if (list.length < 2) return 1;
    const top = list[0].offsetTop;
    const index = list.findIndex((card) => card.offsetTop !== top);
    return index === -1 ? list.length : index;
  }

  function focusAt(index) {
    const list = cards();
    if (!list.length) return;
    const target = list[Math.max(0, Math.min(index, list.length - 1))];
    list.forEach((card) => { card.tabIndex = card === target ? 0 : -1; });
    target.focus();
    target.scrollIntoView({ block: "nearest" });
  }

  function nextPending(from) {
    const list = cards();
    for (let i = from + 1; i < list.length; i++) if (!list[i].dataset.done) return i;
    return from;
  }

  async function decide(card, decision) {
    const state = card.querySelector("[data-slot=state]");
    state.textContent = "…";
    try {
      const response = await fetch("/review/api/decisions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: card.dataset.id, decision, reason: reason.value }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || response.statusText);
      card.dataset.done = decision;
      card.classList.remove("is-cleared", "is-kept", "is-failed");
      card.classList.add(decision === "clear" ? "is-cleared" : "is-kept");
      state.textContent = LABELS[decision];
      remaining.textContent = String(body.remaining);
      reviewed.textContent = String(body.reviewed);
    } catch (error) {
      card.classList.add("is-failed");
      state.textContent = `not saved: ${error.message}`;
    }
  }

  grid.addEventListener("keydown", (event) => {
    const list = cards();
    const index = list.indexOf(document.activeElement);
    if (index === -1 || event.altKey || event.ctrlKey || event.metaKey) return;
    const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -columns(), ArrowDown: columns() };
    const key = event.key.toLowerCase();
    if (event.key in moves) {
      focusAt(index + moves[event.key]);
    } else if (key === "c" || key === "k") {
      decide(list[index], key === "c" ? "clear" : "flag").then(() => focusAt(nextPending(index)));
    } else {
      return;
    }
    event.preventDefault();
  });

  grid.addEventListener("click", (event) => {
    const card = event.target.closest(".review-card");
    if (!card) return;
    const button = event.target.closest("[data-decision]");
    if (button) decide(card, button.dataset.decision);
    focusAt(cards().indexOf(card));
  });

  if (cards().length) focusAt(0);
})();
