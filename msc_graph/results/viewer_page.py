"""The transcript viewer's markup, style and script (plain DOM, no library, no network).

Model text is only ever set as ``textContent``, never parsed as HTML. The list shows 100 sessions a
page; a session's block is decompressed when one of its sessions is opened and then kept. The page
marks ``body[data-viewer=ready]`` once the list is drawn and ``#transcript[data-session]`` once a
conversation is shown (what the headless-browser test waits for); ``#session-<id>`` in the address
opens a session.
"""

VIEWER_CSS = """
.filters{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:center;margin:.5em 0}
.filters label{font-size:13px}.filters select{margin-left:.3em;max-width:26em}
.viewer-body{display:grid;grid-template-columns:minmax(360px,40%) 1fr;gap:1em;align-items:start}
.session-list{max-height:80vh;overflow:auto;border:1px solid #ccc}
.session-list table{margin:0;width:100%}.session-list td{cursor:pointer;font-size:12px;padding:2px 6px;white-space:normal}
.session-list tr:hover{background:#eef4fb}.session-list tr.selected{background:#ffe9a8}
.session-list tr.failed td{color:#a00}.pager{margin:.4em 0;font-size:13px}
#transcript{border:1px solid #ccc;padding:.6em 1em;min-height:12em;max-height:80vh;overflow:auto}
.msg{border-left:4px solid #999;padding:.35em .7em;margin:.5em 0;white-space:pre-wrap;font-size:13px}
.msg.user{background:#f1f6fb;border-color:#0072B2}.msg.agent{background:#fafafa}
.msg.enforced{border-color:#D55E00;background:#fff1e8}
.who{font-weight:600;font-size:12px;color:#333;margin-bottom:.2em;white-space:normal}
.badge{display:inline-block;padding:0 .45em;border-radius:3px;font-size:11px;color:#fff;background:#555;margin-left:.4em}
.badge.enf{background:#D55E00}.badge.solved{background:#007a55}.badge.not-solved{background:#666}
.badge.failed{background:#b00}.badge.timeout{background:#8a5a00}
.draft{font-size:12px;margin-top:.3em;white-space:pre-wrap}.draft.changed{color:#00603f;font-weight:600}
.checks{font-size:12px;color:#444;margin:.2em 0 0 1em;white-space:normal}
.recalled{font-size:12px;background:#eef7f2;border:1px dashed #009E73;padding:.2em .5em;margin:.3em 0;white-space:normal}
.verdict{background:#f3f3f3;border:1px solid #bbb;padding:.4em .7em;margin:.6em 0}
.failure{background:#fde8e8;border:1px solid #c00;padding:.4em .7em;margin:.6em 0}
.panes.two{display:grid;grid-template-columns:1fr 1fr;gap:.8em}.pane{min-width:0}
.viewer-body.comparing{grid-template-columns:minmax(260px,24%) 1fr}.compare-bar{font-size:13px;margin-bottom:.4em}
.call{font-size:11px;color:#555;margin-top:.25em}.call summary{cursor:pointer}
th.sortable,.session-list th[data-col]{cursor:pointer}th[data-sorted=asc]::after{content:" \\25B2"}th[data-sorted=desc]::after{content:" \\25BC"}
tr.linked td{cursor:pointer}tr.linked:hover td{background:#eef4fb}
.notes li{font-size:13px}.notes li.new{background:#eaf7ee}.muted{color:#777}pre.block{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:.4em}
"""

VIEWER_HTML = """
<section id="viewer"><h2 id="transcripts">Transcripts</h2>
<p>Browse the sessions: filter by dataset, setting, user, session number (a point of a learning
curve) and outcome, search their text, sort by
a column, then open one to read the conversation with its enforcing turns marked, the draft answer
as it changed, what was recalled before each reply, each call's tokens, latency and raw reply, the
judge's verdict, any failure, and the notes before and after. "Compare with" puts the same user
and problem under another setting beside it. A click on a row of a table above shows its sessions;
a click on a point of a learning curve shows the sessions behind it.</p>
<div class="filters">
<label>Dataset<select id="f-dataset"></select></label>
<label>Setting<select id="f-setting"></select></label>
<label>User<select id="f-user"></select></label>
<label>Session<select id="f-session"></select></label>
<label>Outcome<select id="f-outcome">
<option value="">any outcome</option><option value="solved">solved</option><option value="not solved">not solved</option>
<option value="timeout">timed out (used every turn)</option><option value="enforced">enforced at least once</option>
<option value="clean">solved with no enforcement</option><option value="failed">failed (no score)</option>
</select></label><label>Search<input id="f-search" type="search" size="24" placeholder="text in the sessions"></label>
<span id="f-count" class="muted"></span></div>
<div class="viewer-body" id="viewer-body"><div><div class="session-list"><table><thead><tr id="session-head"><th data-col="2">setting</th>
<th data-col="1">dataset</th><th data-col="3">user</th><th data-col="4">session</th><th data-col="6">outcome</th><th data-col="8">UE</th>
<th data-col="9">Len</th></tr></thead><tbody id="session-rows"></tbody></table></div>
<div class="pager"><button id="page-prev" type="button">previous</button> <span id="page-info"></span>
<button id="page-next" type="button">next</button></div></div>
<div id="transcript"><p class="muted">Open a session from the list.</p></div></div></section>
"""

VIEWER_JS = r"""
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const IDX = JSON.parse($("msc-index").textContent);
  const S = IDX.sessions, PAGE = 100, cache = new Map(), texts = new Map();
  const F = {dataset: $("f-dataset"), setting: $("f-setting"), user: $("f-user"), session: $("f-session"), outcome: $("f-outcome")};
  const search = $("f-search"), list = $("session-rows"), view = $("transcript");
  let shown = S, page = 0, sortCol = null, sortDir = 1, compareSetting = null, applied = 0;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function addOptions(select, values, labels) {
    values.forEach((v, i) => { const o = el("option", null, labels[i]); o.value = String(v); select.appendChild(o); });
  }
  addOptions(F.dataset, ["", ...IDX.datasets], ["all datasets", ...IDX.datasets]);
  addOptions(F.setting, ["", ...IDX.settings.map((_, i) => i)], ["all settings", ...IDX.settings]);
  addOptions(F.user, ["", ...IDX.users], ["all users", ...IDX.users.map((u) => "user " + u)]);
  const numbers = [...new Set(S.map((s) => s[4]))].sort((a, b) => a - b);
  addOptions(F.session, ["", ...numbers], ["every session", ...numbers.map((n) => "session " + n)]);

  function matches(s) {
    if (F.dataset.value && s[1] !== F.dataset.value) return false;
    if (F.setting.value !== "" && s[2] !== Number(F.setting.value)) return false;
    if (F.user.value !== "" && s[3] !== Number(F.user.value)) return false;
    if (F.session.value !== "" && s[4] !== Number(F.session.value)) return false;
    switch (F.outcome.value) {
      case "solved": case "not solved": case "failed": return s[6] === F.outcome.value;
      case "timeout": return s[10] === "max_turns";
      case "enforced": return s[8] > 0;
      case "clean": return s[6] === "solved" && s[8] === 0;
      default: return true;
    }
  }
  function detailOf(s, blocks) { return blocks[s[11]][s[0] - s[11] * IDX.chunk]; }
  async function searchHits(q) {
    const blocks = await Promise.all([...Array(Math.ceil(S.length / IDX.chunk)).keys()].map(block));
    const hits = new Set();
    for (const s of S) {
      if (!texts.has(s[0])) texts.set(s[0], JSON.stringify(detailOf(s, blocks)).toLowerCase());
      if (texts.get(s[0]).includes(q)) hits.add(s[0]);
    }
    return hits;
  }
  async function apply() {
    const ticket = ++applied, q = search.value.trim().toLowerCase();
    let hits = null;
    try { hits = q ? await searchHits(q) : null; } catch (e) { $("f-count").textContent = "search needs a current browser: " + e; return; }
    if (ticket !== applied) return;  // a newer filter is on its way
    shown = S.filter((s) => matches(s) && (!hits || hits.has(s[0])));
    sortShown(); page = 0; draw();
    $("f-count").dataset.query = q;
  }
  function compare(a, b) {
    const none = (v) => v === null || v === undefined || v === "";
    if (none(a) || none(b)) return none(a) - none(b);
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b), undefined, {numeric: true});
  }
  function sortShown() {
    if (sortCol === null) return;
    const key = (s) => (sortCol === 2 ? IDX.settings[s[2]] : s[sortCol]);
    shown = [...shown].sort((a, b) => compare(key(a), key(b)) * sortDir || a[0] - b[0]);
  }
  function draw() {
    list.replaceChildren();
    const start = page * PAGE;
    for (const s of shown.slice(start, start + PAGE)) {
      const tr = el("tr", "session-row " + s[6].replace(" ", "-"));
      tr.dataset.id = String(s[0]);
      tr.tabIndex = 0;
      const outcome = s[6] + (s[10] === "max_turns" ? " (timed out)" : "");
      for (const v of [IDX.settings[s[2]], s[1], s[3], s[4], outcome, s[8], s[9]]) tr.appendChild(el("td", null, v ?? ""));
      tr.addEventListener("click", () => openSession(s[0]));
      tr.addEventListener("keydown", (e) => { if (e.key === "Enter") openSession(s[0]); });
      list.appendChild(tr);
    }
    const left = IDX.total - S.length;
    $("f-count").textContent = `${shown.length} of ${S.length} sessions` + (left > 0 ? ` (${left} more in the report, left out of the viewer)` : "");
    $("page-info").textContent = shown.length ? `${start + 1}-${Math.min(start + PAGE, shown.length)}` : "none";
    $("page-prev").disabled = page === 0;
    $("page-next").disabled = start + PAGE >= shown.length;
  }
  function block(n) {
    if (!cache.has(n)) {
      const bytes = Uint8Array.from(atob($("msc-chunk-" + n).textContent), (c) => c.charCodeAt(0));
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
      cache.set(n, new Response(stream).json());
    }
    return cache.get(n);
  }
  function notesList(notes, before) {
    if (notes === null || notes === undefined || (Array.isArray(notes) && !notes.length)) return el("p", "muted", "none");
    if (!Array.isArray(notes)) return el("pre", "block", typeof notes === "string" ? notes : JSON.stringify(notes, null, 1));
    const old = new Set((Array.isArray(before) ? before : []).map((n) => JSON.stringify(n)));
    const ul = el("ul", "notes");
    for (const n of notes) {
      const text = typeof n === "object" && n ? [n.preference, n.how_to_satisfy && "how: " + n.how_to_satisfy,
        n.evidence && "evidence: " + n.evidence].filter(Boolean).join(" | ") || JSON.stringify(n) : String(n);
      ul.appendChild(el("li", before !== undefined && !old.has(JSON.stringify(n)) ? "new" : null, text));
    }
    return ul;
  }
  function section(title, body, open) {
    const d = el("details"); d.open = !!open; d.appendChild(el("summary", null, title)); d.appendChild(body); return d;
  }
  function usageText(u) {
    return `${u.calls ?? "?"} call(s), ${u.prompt_tokens ?? "?"} prompt + ${u.completion_tokens ?? "?"} completion tokens` +
      (u.cached_prompt_tokens ? ` (${u.cached_prompt_tokens} cached)` : "") + `, ${Number(u.latency_s ?? 0).toFixed(2)} s`;
  }
  function call(usage, raw) {
    if (!usage && !raw) return null;
    const d = el("details", "call");
    d.appendChild(el("summary", null, usage ? usageText(usage) : "the call"));
    d.appendChild(el("pre", "block raw", raw || "(no raw reply recorded)"));
    return d;
  }
  function message(m, state) {
    const box = el("div", "msg " + m.role + (m.enforced ? " enforced" : ""));
    const who = el("div", "who", m.role === "user" ? `user (turn ${m.turn})` : "agent");
    if (m.enforced) who.appendChild(el("span", "badge enf", "enforces a preference"));
    box.appendChild(who);
    if (m.recalled !== undefined) {
      const r = el("div", "recalled", "recalled before this reply: ");
      r.appendChild(notesList(m.recalled));
      box.appendChild(r);
    }
    box.appendChild(document.createTextNode(m.text));
    if (m.role === "user") {
      const broken = Object.entries(m.checks || {});
      if (broken.length) {
        const c = el("div", "checks");
        for (const [k, v] of broken) c.appendChild(el("div", null, k.replace(/_/g, " ") + ": " + v));
        box.appendChild(section("preference checks", c, m.enforced));
      }
      if (m.draft !== null && m.draft !== undefined) {
        const changed = m.draft !== state.draft;
        box.appendChild(el("div", "draft" + (changed ? " changed" : ""), (changed ? "draft answer now: " : "draft answer unchanged: ") + m.draft));
        state.draft = m.draft;
      }
    }
    const c = call(m.usage, m.raw);
    if (c) box.appendChild(c);
    return box;
  }
  function usageTable(usage) {
    const t = el("table", "usage"), head = el("tr");
    for (const h of ["role", "calls", "prompt tokens", "completion tokens", "cached prompt tokens", "latency s"]) head.appendChild(el("th", null, h));
    t.appendChild(head);
    for (const [role, u] of Object.entries(usage || {})) {
      const tr = el("tr");
      for (const v of [role, u.calls, u.prompt_tokens, u.completion_tokens, u.cached_prompt_tokens, u.latency_s]) tr.appendChild(el("td", null, v ?? ""));
      t.appendChild(tr);
    }
    return t;
  }
  function transcript(s, d) {
    const out = [el("h3", null, `${IDX.settings[s[2]]} | ${s[1]} | user ${s[3]} | session ${s[4]} | problem ${s[5]}`)];
    const head = el("p");
    head.appendChild(el("span", "badge " + s[6].replace(" ", "-"), s[6]));
    if (s[10] === "max_turns") head.appendChild(el("span", "badge timeout", "timed out"));
    head.appendChild(document.createTextNode(`  TS ${s[7] ?? "-"}, UE ${s[8] ?? "-"}, Len ${s[9] ?? "-"}, ended by ${s[10] || "-"}`));
    out.push(head, section("problem", el("pre", "block", d.problem), true), section("reference solution", el("pre", "block", d.solution)));
    const prefs = el("ul");
    for (const [cat, text] of d.preferences) prefs.appendChild(el("li", null, (cat ? cat + ": " : "") + text));
    out.push(section("persona and preferences", (() => { const w = el("div"); w.appendChild(el("p", null, d.persona)); w.appendChild(prefs); return w; })()));
    if ("notes_before" in d) out.push(section("notes before the session", notesList(d.notes_before), true));
    const conv = el("div", "conversation"), state = {draft: undefined};
    for (const m of d.conversation) conv.appendChild(message(m, state));
    out.push(el("h4", null, "Conversation"), conv);
    if (d.verdict && Object.keys(d.verdict).length) {
      const v = el("div", "verdict", `judge: accuracy ${d.verdict.accuracy ?? "-"}. ${d.verdict.reasoning ?? d.verdict.error ?? ""}  (graded draft: ${d.draft})`);
      const c = call((d.usage || {}).judge, d.judge_raw);
      if (c) v.appendChild(c);
      out.push(v);
    }
    if (d.failure) out.push(el("div", "failure", `failed at ${d.failure.stage} (${d.failure.kind || "?"}): ${d.failure.reason}`));
    if ("notes_after" in d) {
      out.push(section("notes after the session (new ones shaded)", notesList(d.notes_after, d.notes_before || []), true));
      if (d.reflection && (d.reflection.reasoning || d.reflection.error)) out.push(el("p", "muted", "reflection: " + (d.reflection.error || d.reflection.reasoning)));
    }
    if (d.usage && Object.keys(d.usage).length) out.push(section("model calls of this session", usageTable(d.usage)));
    return out;
  }
  function twins(s) { return S.filter((t) => t[0] !== s[0] && t[1] === s[1] && t[3] === s[3] && String(t[5]) === String(s[5])); }
  function compareBar(s, other) {
    const bar = el("div", "compare-bar", "Compare with the same user and problem under: ");
    const sel = el("select");
    sel.id = "compare-with";
    const ts = twins(s);
    addOptions(sel, ["", ...ts.map((t) => t[0])], [ts.length ? "nothing (this session alone)" : "no other setting has it",
      ...ts.map((t) => `${IDX.settings[t[2]]} (session ${t[4]}, ${t[6]}, UE ${t[8] ?? "-"})`)]);
    sel.value = other === null ? "" : String(other);
    sel.addEventListener("change", () => {
      const o = sel.value === "" ? null : Number(sel.value);
      compareSetting = o === null ? null : S[o][2];
      openSession(s[0], o);
    });
    bar.appendChild(sel);
    return bar;
  }
  async function openSession(id, other) {
    const s = S[id];
    if (!s) return;
    if (other === undefined) {  // keep comparing with the setting chosen last, where this user and problem has it
      const t = compareSetting === null ? undefined : twins(s).find((x) => x[2] === compareSetting);
      other = t ? t[0] : null;
    }
    for (const tr of list.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const row = list.querySelector(`tr[data-id="${id}"]`);
    if (row) row.classList.add("selected");
    view.replaceChildren(el("p", "muted", "opening..."));
    delete view.dataset.session;
    delete view.dataset.compare;
    try {
      const panes = el("div", "panes" + (other !== null ? " two" : ""));
      for (const x of other !== null ? [s, S[other]] : [s]) {
        const pane = el("div", "pane");
        pane.dataset.session = String(x[0]);
        pane.replaceChildren(...transcript(x, (await block(x[11]))[x[0] - x[11] * IDX.chunk]));
        panes.appendChild(pane);
      }
      view.replaceChildren(compareBar(s, other), panes);
      $("viewer-body").classList.toggle("comparing", other !== null);
      view.dataset.session = String(id);
      if (other !== null) view.dataset.compare = String(other);
      history.replaceState(null, "", "#session-" + id + (other !== null ? "-vs-" + other : ""));
      view.scrollTop = 0;
    } catch (e) {
      view.replaceChildren(el("p", "failure", "cannot open this session here: " + e + " (a current browser is needed)"));
    }
  }
  function showSessions(dataset, setting, session) {
    F.dataset.value = IDX.datasets.includes(dataset) ? dataset : "";
    F.setting.value = setting >= 0 ? String(setting) : "";
    F.user.value = ""; F.outcome.value = ""; search.value = "";
    F.session.value = session !== undefined && numbers.includes(session) ? String(session) : "";
    apply();
    $("viewer").scrollIntoView();
  }
  function linkTable(table) {  // a report table with a setting column: a click on a row shows its sessions
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    const si = heads.indexOf("setting"), di = heads.indexOf("dataset");
    if (si < 0) return;
    for (const tr of table.tBodies[0].rows) {
      const setting = IDX.settings.indexOf(tr.cells[si].textContent);
      if (setting < 0) continue;
      tr.classList.add("linked");
      tr.title = "click: these sessions in the transcript viewer";
      tr.addEventListener("click", () => showSessions(di >= 0 ? tr.cells[di].textContent : "", setting));
    }
  }
  function sortable(table) {  // a click on a column's head sorts the rows by it (numbers by value)
    const heads = [...table.querySelectorAll("thead th")];
    const value = (text) => { const m = /^\s*[-+]?\d+(\.\d+)?/.exec(text); return m ? parseFloat(m[0]) : text.trim(); };
    heads.forEach((th, i) => {
      th.classList.add("sortable");
      th.addEventListener("click", () => {
        const dir = th.dataset.sorted === "asc" ? -1 : 1;
        heads.forEach((h) => delete h.dataset.sorted);
        th.dataset.sorted = dir === 1 ? "asc" : "desc";
        const rows = [...table.tBodies[0].rows];
        rows.sort((a, b) => compare(value(a.cells[i].textContent), value(b.cells[i].textContent)) * dir);
        table.tBodies[0].append(...rows);
      });
    });
  }
  for (const a of document.querySelectorAll("a.point")) {  // a point of a figure: its setting's sessions at that session number
    a.addEventListener("click", (e) => {
      e.preventDefault();
      showSessions(a.dataset.dataset, IDX.settings.indexOf(a.dataset.setting), Number(a.dataset.session));
    });
  }
  for (const table of document.querySelectorAll("table")) {
    if (table.closest("#viewer") || !table.tHead || !table.tBodies.length) continue;
    sortable(table);
    linkTable(table);
  }
  for (const th of document.querySelectorAll("#session-head th[data-col]")) {
    th.addEventListener("click", () => {
      const col = Number(th.dataset.col);
      sortDir = sortCol === col ? -sortDir : 1;
      sortCol = col;
      for (const h of document.querySelectorAll("#session-head th")) delete h.dataset.sorted;
      th.dataset.sorted = sortDir === 1 ? "asc" : "desc";
      sortShown(); page = 0; draw();
    });
  }
  for (const f of Object.values(F)) f.addEventListener("change", apply);
  let typing = null;
  search.addEventListener("input", () => { clearTimeout(typing); typing = setTimeout(apply, 250); });
  $("page-prev").addEventListener("click", () => { page = Math.max(0, page - 1); draw(); });
  $("page-next").addEventListener("click", () => { page += 1; draw(); });
  shown = S.filter(matches); draw();
  const m = /^#session-(\d+)(?:-vs-(\d+))?$/.exec(location.hash);
  if (m) openSession(Number(m[1]), m[2] === undefined ? undefined : Number(m[2]));
  document.body.dataset.viewer = "ready";
})();
"""
