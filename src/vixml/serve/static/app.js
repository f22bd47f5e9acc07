// The vixml web page: predict, add, hide (after a confirmation, with an undo) and unhide labels, link to the
// run's report. Labels are shown and edited by their own id (the catalogue's, else their row). No framework, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let queryImages = [];  // base64 strings of the dropped images

function fail(element, detail) {
  element.className = "error";
  element.textContent = detail;
}

async function call(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = Array.isArray(body.detail)
      ? body.detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("; ")
      : body.detail || response.statusText;
    throw new Error(`${response.status} ${detail}`);
  }
  return body;
}

function editHeaders() {
  const headers = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function loadInfo() {
  info = await call("/info");
  const runName = info.run.split("/").filter(Boolean).slice(-1)[0] || info.run;
  $("run-info").title = info.run;
  $("run-info").textContent =
    `run ${runName} · ${info.model} · ${info.visible_labels} labels` +
    (info.added_labels ? ` (${info.added_labels} added)` : "") + (info.prototypes ? " · PRIME" : "");
  $("version").textContent = info.vixml;
  $("query-drop").hidden = !info.query_images;
  $("augment-box").hidden = !info.augment;
  $("source-box").hidden = !info.sparse;
  $("token").hidden = !info.token_required;
  $("k").max = info.limits.max_k;
  if (!info.editable) {
    $("add-label").disabled = true;
    $("add-status").textContent = info.edit_refusal;
  }
}

function formatScore(score) {
  // four decimals, fewer digits for large magnitudes, so that the text always fits inside its bar
  const magnitude = Math.abs(score);
  return magnitude >= 1e4 ? score.toExponential(2) : score.toFixed(magnitude >= 100 ? 1 : 4);
}

function showResults(result) {
  const list = $("results");
  list.innerHTML = "";
  const top = Math.max(...result.scores.map((s) => Math.abs(s)), 1e-9);
  result.labels.forEach((row, i) => {
    const key = result.ids ? result.ids[i] : String(row);
    const li = document.createElement("li");
    li.dataset.labelId = row;
    li.dataset.id = key;
    const text = result.texts[i] === null ? `label ${key}` : result.texts[i];
    const added = info && row >= info.trained_labels ? "<span class='added'>added</span>" : "";
    const found = result.sources ? `<span class="found">${result.sources[i].join(" + ")}</span>` : "";
    const width = Math.min(100, Math.max(0, (100 * result.scores[i]) / top));
    li.innerHTML =
      `<span class="rank">${i + 1}</span>` +
      `<span class="label"><span class="label-text"></span><span class="label-id"></span>${added}${found}</span>` +
      `<span class="bar"><span style="width:${width}%"></span><em class="score"></em></span>` +
      (info && info.editable ? `<button class="hide" title="hide this label (you can undo it)">hide</button>` : "<span></span>");
    li.querySelector(".label-text").textContent = text;
    li.querySelector(".label-id").textContent = `#${key}`;
    li.querySelector(".label-id").title = key === String(row) ? `row ${row}` : `id ${key} · row ${row}`;
    li.querySelector(".score").textContent = formatScore(result.scores[i]);
    li.querySelector(".score").title = String(result.scores[i]);
    const hide = li.querySelector("button.hide");
    if (hide) hide.addEventListener("click", () => hideLabel(key, text, li));
    list.appendChild(li);
  });
}

async function predict(event) {
  event.preventDefault();
  const status = $("predict-status");
  status.className = "muted";
  status.textContent = "…";
  const started = performance.now();
  try {
    const body = {
      queries: [{ text: $("query").value, images: queryImages }],
      k: Number($("k").value),
      augment: $("augment").checked,
    };
    if (info && info.sparse) body.source = $("source").value;
    const answer = await call("/predict", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    showResults(answer.results[0]);
    status.textContent = `${answer.results[0].labels.length} labels in ${Math.round(performance.now() - started)} ms`;
  } catch (error) {
    fail(status, error.message);
  }
}

async function addLabel(event) {
  event.preventDefault();
  const status = $("add-status");
  status.className = "muted";
  try {
    const text = $("new-label").value;
    const label = { text };
    const id = $("new-label-id").value.trim();
    if (id) label.id = id;
    const answer = await call("/labels", {
      method: "POST", headers: editHeaders(), body: JSON.stringify({ labels: [label] }),
    });
    status.textContent = `added "${text}" as label #${answer.ids[0]} (${answer.labels} labels now)`;
    $("new-label").value = "";
    $("new-label-id").value = "";
    await loadInfo();
  } catch (error) {
    fail(status, error.message);
  }
}

async function hideLabel(key, text, li) {
  if (!window.confirm(`Hide "${text}" (#${key}) from every prediction?\nYou can undo it.`)) return;
  const status = $("edit-status");
  try {
    await call(`/labels/${encodeURIComponent(key)}`, { method: "DELETE", headers: editHeaders() });
    li.remove();
    status.className = "muted";
    status.textContent = `hid "${text}" (#${key}) `;
    const undo = document.createElement("button");
    undo.id = "undo";
    undo.className = "undo";
    undo.type = "button";
    undo.textContent = "undo";
    undo.addEventListener("click", () => unhideLabel(key, text));
    status.appendChild(undo);
    await loadInfo();
  } catch (error) {
    fail(status, error.message);
  }
}

async function unhideLabel(key, text) {
  const status = $("edit-status");
  try {
    await call(`/labels/${encodeURIComponent(key)}/unhide`, { method: "POST", headers: editHeaders() });
    status.className = "muted";
    status.textContent = `"${text}" (#${key}) is shown again`;
    await loadInfo();
    if ($("query").value.trim()) $("predict-form").requestSubmit();
  } catch (error) {
    fail(status, error.message);
  }
}

function readImages(files) {
  for (const file of files) {
    const reader = new FileReader();
    reader.onload = () => {
      if (queryImages.length >= (info ? info.num_images : 1)) return;
      queryImages.push(reader.result.split(",", 2)[1]);
      const img = document.createElement("img");
      img.src = reader.result;
      $("query-thumbs").appendChild(img);
    };
    reader.readAsDataURL(file);
  }
}

function setUpDrop() {
  const zone = $("query-drop");
  zone.addEventListener("click", () => $("query-files").click());
  $("query-files").addEventListener("change", (e) => readImages(e.target.files));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    readImages(e.dataTransfer.files);
  });
}

$("predict-form").addEventListener("submit", predict);
$("label-form").addEventListener("submit", addLabel);
setUpDrop();
loadInfo().catch((error) => fail($("run-info"), error.message));
