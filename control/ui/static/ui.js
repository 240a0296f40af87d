// Live updates for the dashboard, without a library: a page element with
// data-live-src follows a server-sent event stream (a watch of pods) and, on each
// change, fetches its data-live-fragment again (server-rendered, escaped HTML);
// a <pre data-log-src> appends each log line as text (never as HTML).
"use strict";

function setState(text) {
  const state = document.getElementById("live-state");
  if (state) { state.textContent = text; }
}

function followWatch(el) {
  let pending = false;
  let again = false;
  async function refresh() {
    if (pending) { again = true; return; }
    pending = true;
    try {
      do {
        again = false;
        const answer = await fetch(el.dataset.liveFragment, {credentials: "same-origin"});
        if (answer.ok) {
          el.innerHTML = await answer.text();
          el.dataset.updated = String(Date.now());
        } else {
          setState("updates stopped (" + answer.status + ")");
        }
      } while (again);
    } finally {
      pending = false;
    }
  }
  // The owner's status (ready/desired) is written by its controller just after the
  // pods change: one trailing refresh, a second after the last event, shows it.
  let trailing = null;
  function changed() {
    refresh();
    clearTimeout(trailing);
    trailing = setTimeout(refresh, 1000);
  }
  const source = new EventSource(el.dataset.liveSrc);
  source.addEventListener("ready", () => { setState("live"); el.dataset.live = "ready"; });
  source.addEventListener("change", changed);
  source.addEventListener("end", () => { setState("reconnecting…"); });
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) { setState("updates stopped"); } };
}

function followLog(pre) {
  const source = new EventSource(pre.dataset.logSrc);
  source.addEventListener("ready", () => { setState("live"); pre.dataset.live = "ready"; });
  source.addEventListener("line", (event) => {
    pre.appendChild(document.createTextNode(event.data + "\n"));
    pre.scrollTop = pre.scrollHeight;
  });
  source.addEventListener("end", () => { setState("ended"); source.close(); });
  source.onerror = () => { setState("stopped"); source.close(); };
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live-src]").forEach(followWatch);
  document.querySelectorAll("[data-log-src]").forEach(followLog);
});
