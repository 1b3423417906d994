// ctxdask serve: live overview without reloads, and small conveniences. No inline scripts
// (the pages' Content-Security-Policy forbids them); fragments come from the server already escaped.
"use strict";
(function () {
  for (const el of document.querySelectorAll("select[data-autosubmit]")) {
    el.addEventListener("change", () => el.form.submit());
  }
  // mark each thumbnail loaded or missing, as the static report does
  for (const img of document.images) {
    const mark = () => {
      const ok = img.naturalWidth > 0;
      img.dataset.loaded = ok ? "yes" : "no";
      if (!ok) img.closest("figure")?.classList.add("missing");
    };
    if (img.complete) mark(); else { img.addEventListener("load", mark); img.addEventListener("error", mark); }
  }
  if (document.body.dataset.page !== "overview") return;
  let polls = 0;
  async function refresh() {
    try {
      const response = await fetch("/api/overview", { headers: { "Accept": "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(String(response.status));
      const data = await response.json();
      for (const [name, html] of Object.entries(data.fragments)) {
        const target = document.querySelector(`[data-fragment="${name}"]`);
        if (target) target.innerHTML = html;  // rendered by the same autoescaped templates as the page
      }
      const updated = document.getElementById("updated");
      updated.textContent = "updated " + data.generated;
      updated.dataset.generated = data.generated;
      document.body.dataset.polls = String(++polls);
      document.body.dataset.pairsDone = String(data.counts.pairs.done || 0);
    } catch (err) {
      document.getElementById("updated").textContent = "cannot reach the server (" + err.message + "); retrying";
    }
  }
  setInterval(refresh, Number(document.body.dataset.interval || 2000));
})();
