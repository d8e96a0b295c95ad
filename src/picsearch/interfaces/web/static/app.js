// picsearch: live search without page reloads. The page works without this file (plain form GET);
// with it, searches go to the JSON API and results are drawn from the page's <template> blocks.
// Text from the server is only ever set with textContent or as attribute values, never as HTML.
"use strict";

(function () {
  const form = document.getElementById("search-form");
  const results = document.getElementById("results");
  if (!form || !results || !window.fetch) return;

  const query = form.elements.namedItem("q");
  const minScore = form.elements.namedItem("min_score");
  const minScoreOut = document.getElementById("min_score_out");
  const status = document.getElementById("status");
  let inFlight = null;
  // The page's language: the server puts the messages this script needs on <body>.
  const messages = JSON.parse(document.body.dataset.messages || "{}");
  const format = (text, values) => text.replace(/\{(\w+)\}/g, (whole, name) => (name in values ? values[name] : whole));

  const percent = (score) => `${Math.round(Number(score) * 100)}%`;

  function fromTemplate(id) {
    return document.getElementById(id).content.firstElementChild.cloneNode(true);
  }

  function slot(node, name) {
    return node.querySelector(`[data-slot="${name}"]`);
  }

  function card(item, rank) {
    const node = fromTemplate("tpl-card");
    slot(node, "link").href = item.image_url;
    const image = slot(node, "image");
    image.src = item.thumb_url;
    image.alt = format(messages.result_alt, { rank, percent: percent(item.score) });
    slot(node, "rank").textContent = String(rank);
    slot(node, "meter").value = item.score;
    slot(node, "score").textContent = percent(item.score);
    return node;
  }

  function answerNodes(answer, threshold) {
    if (answer.blocked) {
      const node = fromTemplate("tpl-blocked");
      slot(node, "disclaimer").textContent = answer.disclaimer;
      return [node];
    }
    if (answer.results.length === 0) {
      const node = fromTemplate("tpl-empty");
      slot(node, "query").textContent = answer.query;
      slot(node, "threshold").textContent = percent(threshold);
      return [node];
    }
    const summary = fromTemplate("tpl-summary");
    slot(summary, "count").textContent = String(answer.results.length);
    slot(summary, "noun").textContent = answer.results.length === 1 ? messages.photo_one : messages.photo_other;
    slot(summary, "query").textContent = answer.query;
    const grid = document.createElement("ol");
    grid.className = "grid";
    answer.results.forEach((item, index) => grid.append(card(item, index + 1)));
    if (!answer.weak) return [summary, grid];
    const weak = fromTemplate("tpl-weak"); // even the best scores under the server's "minor aspects" line
    slot(weak, "best").textContent = percent(answer.results[0].score);
    return [summary, weak, grid];
  }

  function errorNode(message) {
    const node = fromTemplate("tpl-error");
    slot(node, "message").textContent = message;
    return node;
  }

  function setLoading(loading) {
    document.body.classList.toggle("is-loading", loading);
    results.setAttribute("aria-busy", String(loading));
  }

  async function search() {
    const params = new URLSearchParams(new FormData(form));
    if (inFlight) inFlight.abort();
    const controller = new AbortController();
    inFlight = controller;
    setLoading(true);
    let nodes;
    try {
      const response = await fetch(`${form.dataset.api}?${params}`, {
        headers: { Accept: "application/json" },
        signal: controller.signal,
      });
      const body = await response.json().catch(() => ({}));
      if (response.ok) {
        nodes = answerNodes(body, params.get("min_score"));
        document.title = `${body.query} · picsearch`;
      } else {
        nodes = [errorNode(body.detail || format(messages.error_status, { status: response.status }))];
      }
    } catch (error) {
      if (error.name === "AbortError") return;
      nodes = [errorNode(messages.error_unreachable)];
    } finally {
      if (inFlight === controller) {
        inFlight = null;
        setLoading(false);
      }
    }
    results.replaceChildren(...nodes);
    const spoken = nodes.filter((node) => node.tagName !== "OL").map((node) => node.textContent).join(" ");
    status.textContent = spoken.replace(/\s+/g, " ").trim(); // read out by screen readers, the grid aside
    history.replaceState(null, "", `${form.getAttribute("action")}?${params}`);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });

  // Changing a control re-runs the current search (not while the box is empty).
  form.addEventListener("change", (event) => {
    if (event.target !== query && query.value.trim() !== "" && form.checkValidity()) search();
  });

  minScore.addEventListener("input", () => {
    minScoreOut.textContent = percent(minScore.value);
  });

  // "/" jumps to the search box from anywhere but a text field.
  document.addEventListener("keydown", (event) => {
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    if (event.key === "/" && !typing && !event.ctrlKey && !event.metaKey && !event.altKey) {
      event.preventDefault();
      query.focus();
      query.select();
    }
  });
})();
