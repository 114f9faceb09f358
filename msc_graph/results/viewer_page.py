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
.notes li{font-size:13px}.notes li.new{background:#eaf7ee}.muted{color:#777}pre.block{white-space:pre-wrap;font-size:12px;background:#fafafa;padding:.4em}
"""

VIEWER_HTML = """
<section id="viewer"><h2 id="transcripts">Transcripts</h2>
<p>Browse the sessions: filter by dataset, setting, user and outcome, then open one to read the
conversation with its enforcing turns marked, the draft answer as it changed, what was recalled
before each reply, the judge's verdict, any failure, and the notes before and after.</p>
<div class="filters">
<label>Dataset<select id="f-dataset"></select></label>
<label>Setting<select id="f-setting"></select></label>
<label>User<select id="f-user"></select></label>
<label>Outcome<select id="f-outcome">
<option value="">any outcome</option><option value="solved">solved</option><option value="not solved">not solved</option>
<option value="timeout">timed out (used every turn)</option><option value="enforced">enforced at least once</option>
<option value="clean">solved with no enforcement</option><option value="failed">failed (no score)</option>
</select></label><span id="f-count" class="muted"></span></div>
<div class="viewer-body"><div><div class="session-list"><table><thead><tr><th>setting</th><th>dataset</th>
<th>user</th><th>session</th><th>outcome</th><th>UE</th><th>Len</th></tr></thead><tbody id="session-rows"></tbody></table></div>
<div class="pager"><button id="page-prev" type="button">previous</button> <span id="page-info"></span>
<button id="page-next" type="button">next</button></div></div>
<div id="transcript"><p class="muted">Open a session from the list.</p></div></div></section>
"""

VIEWER_JS = r"""
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const IDX = JSON.parse($("msc-index").textContent);
  const S = IDX.sessions, PAGE = 100, cache = new Map();
  const F = {dataset: $("f-dataset"), setting: $("f-setting"), user: $("f-user"), outcome: $("f-outcome")};
  const list = $("session-rows"), view = $("transcript");
  let shown = S, page = 0;

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

  function matches(s) {
    if (F.dataset.value && s[1] !== F.dataset.value) return false;
    if (F.setting.value !== "" && s[2] !== Number(F.setting.value)) return false;
    if (F.user.value !== "" && s[3] !== Number(F.user.value)) return false;
    switch (F.outcome.value) {
      case "solved": case "not solved": case "failed": return s[6] === F.outcome.value;
      case "timeout": return s[10] === "max_turns";
      case "enforced": return s[8] > 0;
      case "clean": return s[6] === "solved" && s[8] === 0;
      default: return true;
    }
  }
  function apply() { shown = S.filter(matches); page = 0; draw(); }
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
    return box;
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
      out.push(el("div", "verdict", `judge: accuracy ${d.verdict.accuracy ?? "-"}. ${d.verdict.reasoning ?? d.verdict.error ?? ""}  (graded draft: ${d.draft})`));
    }
    if (d.failure) out.push(el("div", "failure", `failed at ${d.failure.stage} (${d.failure.kind || "?"}): ${d.failure.reason}`));
    if ("notes_after" in d) {
      out.push(section("notes after the session (new ones shaded)", notesList(d.notes_after, d.notes_before || []), true));
      if (d.reflection && (d.reflection.reasoning || d.reflection.error)) out.push(el("p", "muted", "reflection: " + (d.reflection.error || d.reflection.reasoning)));
    }
    return out;
  }
  async function openSession(id) {
    const s = S[id];
    if (!s) return;
    for (const tr of list.querySelectorAll("tr.selected")) tr.classList.remove("selected");
    const row = list.querySelector(`tr[data-id="${id}"]`);
    if (row) row.classList.add("selected");
    view.replaceChildren(el("p", "muted", "opening..."));
    delete view.dataset.session;
    try {
      const details = await block(s[11]);
      view.replaceChildren(...transcript(s, details[id - s[11] * IDX.chunk]));
      view.dataset.session = String(id);
      view.scrollTop = 0;
    } catch (e) {
      view.replaceChildren(el("p", "failure", "cannot open this session here: " + e + " (a current browser is needed)"));
    }
  }
  for (const f of Object.values(F)) f.addEventListener("change", apply);
  $("page-prev").addEventListener("click", () => { page = Math.max(0, page - 1); draw(); });
  $("page-next").addEventListener("click", () => { page += 1; draw(); });
  apply();
  const m = /^#session-(\d+)$/.exec(location.hash);
  if (m) openSession(Number(m[1]));
  document.body.dataset.viewer = "ready";
})();
"""
