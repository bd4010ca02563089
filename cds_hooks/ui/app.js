// hofhir preview page. Builds the DOM with textContent; the only HTML it inserts is what the service rendered
// (cards: markdown-it-py with raw HTML disabled, every other string escaped; the timeline: an SVG of text
// nodes), parsed with DOMParser, which runs no script; the page's CSP allows no inline script either.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let authOn = false;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function today() {
    const d = new Date();
    return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 10);
  }

  function showOutcome(status, body) {
    const box = $("errors");
    box.replaceChildren();
    box.hidden = false;
    if (status === 401) {
      box.append(el("h3", "401: the service wants a JWT"));
      box.append(el("p", "Authentication is on. For local use start the service with HOFHIR_AUTH=off; " +
        "in production call it from the EHR (or the CDS Hooks sandbox) with an issuer in HOFHIR_AUTH_ISSUERS."));
      return;
    }
    const issues = body && body.resourceType === "OperationOutcome" && Array.isArray(body.issue) ? body.issue : [];
    box.append(el("h3", "Not evaluated: the service answered HTTP " + status + " with an OperationOutcome of " +
      issues.length + (issues.length === 1 ? " issue" : " issues")));
    const list = el("ul");
    for (const issue of issues) {
      const item = el("li");
      item.append(el("strong", (issue.severity || "error") + " · " + (issue.code || "") + ": "));
      item.append(document.createTextNode(issue.diagnostics || ""));
      if (Array.isArray(issue.expression) && issue.expression.length) {
        item.append(el("span", "  at " + issue.expression.join(", "), "where"));
      }
      list.append(item);
    }
    if (!issues.length) list.append(el("li", "The service answered without an OperationOutcome."));
    box.append(list);
  }

  function parseFragment(html, type) {
    const doc = new DOMParser().parseFromString(html, type);
    return type === "text/html" ? Array.from(doc.body.childNodes) : [document.importNode(doc.documentElement, true)];
  }

  function renderBanner(patient, data) {
    const banner = $("patient-banner");
    banner.replaceChildren();
    banner.hidden = false;
    const name = el("div", patient.name || ("Patient/" + (patient.id || "unknown")));
    banner.append(name);
    const facts = [
      patient.gender ? patient.gender : null,
      patient.birthDate ? "born " + patient.birthDate + (patient.age !== null && patient.age !== undefined ? " (" + patient.age + " y)" : "") : null,
      "hook " + data.hook,
      "service " + data.service,
      "as of " + data.now.slice(0, 10),
    ];
    for (const f of facts) if (f) banner.append(el("span", f));
  }

  function renderResult(data) {
    $("errors").hidden = true;
    $("feedback-note").hidden = true;
    renderBanner(data.patient || {}, data);
    const cards = $("cards");
    cards.replaceChildren();
    const count = data.response.cards.length;
    $("card-count").textContent = "(" + count + ")";
    if (!count) {
      cards.append(el("p", data.quietReason || "No cards.", "no-cards"));
    } else {
      cards.append(...parseFragment(data.cardsHtml, "text/html"));
    }
    const figure = $("timeline");
    figure.hidden = false;
    $("timeline-empty").hidden = true;
    figure.replaceChildren(...parseFragment(data.timeline.svg, "image/svg+xml"));
    const caption = el("figcaption");
    const details = el("details");
    details.append(el("summary", "Timeline as text"));
    const list = el("ul");
    for (const line of data.timeline.text) list.append(el("li", line));
    details.append(list);
    caption.append(details);
    figure.append(caption);
    const rejected = data.rejected || [];
    if (rejected.length) {
      const box = el("div", null, "notice notice-warning");
      box.append(el("strong", rejected.length + " resource(s) left out as invalid FHIR: "));
      const list = el("ul");
      for (const r of rejected.slice(0, 10)) list.append(el("li", r.resource + ": " + r.reason));
      box.append(list);
      cards.prepend(box);
    }
    for (const button of cards.querySelectorAll(".dismiss-btn")) button.addEventListener("click", dismiss);
    for (const button of cards.querySelectorAll(".accept")) button.addEventListener("click", accept);
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    let data = null;
    const text = await response.text();
    if (text) { try { data = JSON.parse(text); } catch (e) { data = null; } }
    return { status: response.status, ok: response.ok, data };
  }

  async function evaluate(body) {
    body.asOf = $("as-of").value || null;
    const answer = await post("/preview", body);
    if (!answer.ok) { showOutcome(answer.status, answer.data); return; }
    renderResult(answer.data);
    // The request as evaluated (an example already shifted to today), ready to be edited and sent again.
    if (body.example) $("paste").value = JSON.stringify(answer.data.request, null, 1);
  }

  async function sendFeedback(card, item, what) {
    const service = card.dataset.service;
    item.card = card.dataset.uuid;
    item.outcomeTimestamp = new Date().toISOString();
    const answer = await post("/cds-services/" + encodeURIComponent(service) + "/feedback", { feedback: [item] });
    const note = $("feedback-note");
    note.hidden = false;
    if (answer.ok) {
      note.textContent = "Feedback sent to " + service + ": " + what + ". See the counts at /feedback.";
      card.classList.add("dismissed");
    } else {
      showOutcome(answer.status, answer.data);
    }
  }

  function dismiss(event) {
    const card = event.target.closest(".card");
    const select = card.querySelector(".override-reason");
    const option = select.selectedOptions[0];
    const item = { outcome: "overridden" };
    let what = "dismissed";
    if (select.value) {
      item.overrideReason = { reason: { code: select.value, system: option.dataset.system, display: option.textContent } };
      what = "dismissed (" + option.textContent + ")";
    }
    sendFeedback(card, item, what);
  }

  function accept(event) {
    const card = event.target.closest(".card");
    sendFeedback(card, { outcome: "accepted", acceptedSuggestions: [{ id: event.target.dataset.suggestion }] }, "suggestion accepted");
  }

  async function start() {
    $("as-of").value = today();
    try {
      const response = await fetch("/preview/examples");
      const data = await response.json();
      authOn = Boolean(data.auth);
      $("auth-banner").hidden = !authOn;
      for (const ex of data.examples) {
        const option = el("option", ex.title + " — " + ex.hook);
        option.value = ex.id;
        $("example").append(option);
      }
    } catch (e) {
      showOutcome(0, null);
    }
    $("controls").addEventListener("submit", (event) => {
      event.preventDefault();
      const example = $("example").value;
      if (example) evaluate({ example });
      else evaluate({ text: $("paste").value });
    });
    $("evaluate-paste").addEventListener("click", () => evaluate({ text: $("paste").value }));
    $("example").addEventListener("change", () => { if ($("example").value) evaluate({ example: $("example").value }); });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
