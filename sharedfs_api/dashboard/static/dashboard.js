// sharedfs dashboard: refreshes the instances' mount states without reloading (served as a file: the CSP allows no inline script).
"use strict";

function refreshInstances(table) {
  const source = table.dataset.source;
  const live = document.getElementById("live");
  fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((answer) => {
      // The session ended (expired, or its token was revoked): the sign-in page says why.
      if (answer.status === 401) { window.location.assign("/dashboard"); return Promise.reject(401); }
      return answer.ok ? answer.json() : Promise.reject(answer.status);
    })
    .then((data) => {
      const status = document.getElementById("fs-status");
      if (status && data.status) status.textContent = data.status;
      for (const row of data.instances) {
        let tr = table.querySelector(`tr[data-instance="${CSS.escape(row.id)}"]`);
        if (!tr) {  // an instance that appeared since the page was made (a project-scope one, a new report)
          const empty = table.querySelector("tr.empty-row");
          if (empty) empty.remove();
          tr = document.createElement("tr");
          tr.dataset.instance = row.id;
          for (const cls of ["id", "connected", "mount-state", "detail", "actions"]) {
            const td = document.createElement("td");
            td.className = cls;
            tr.appendChild(td);
          }
          tr.children[0].textContent = row.id;
          table.tBodies[0].appendChild(tr);
        }
        tr.querySelector(".connected").textContent = row.connected ? "yes" : "no";
        const state = tr.querySelector(".mount-state");
        state.textContent = row.mount_state || "";
        state.className = "mount-state state-" + (row.mount_state || "none");
        tr.querySelector(".detail").textContent = row.detail || "";
      }
      if (live) { live.textContent = "live, " + new Date().toLocaleTimeString(); live.className = ""; }
    })
    .catch((why) => { if (live) { live.textContent = "not updating (" + why + ")"; live.className = "error"; } })
    .finally(() => setTimeout(() => refreshInstances(table), Number(table.dataset.pollMs) || 1000));
}

document.addEventListener("DOMContentLoaded", () => {
  const table = document.getElementById("instances");
  if (table && table.dataset.source) refreshInstances(table);
  const del = document.getElementById("delete-form");
  if (del) del.addEventListener("submit", (event) => {
    if (!window.confirm("Delete this filesystem and its storage?")) event.preventDefault();
  });
});
