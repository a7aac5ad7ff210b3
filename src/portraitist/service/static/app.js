// The web page: a client of the /v1 API like any other (no build step, no framework).
"use strict";

const $ = (id) => document.getElementById(id);
let token = localStorage.getItem("portraitist-token") || "";
let currentJob = null;

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, { Authorization: `Bearer ${token}` });
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail; } catch (_) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.status === 204 ? null : response.json();
}

function figure(src, caption, className) {
  const fig = document.createElement("figure");
  if (className) fig.className = className;
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  const text = document.createElement("figcaption");
  text.textContent = caption;
  fig.append(img, text);
  return fig;
}

// ---- signing in
async function signIn(newToken) {
  token = newToken.trim();
  try {
    const me = await api("/v1/me");
    localStorage.setItem("portraitist-token", token);
    $("signin").hidden = true;
    $("app").hidden = false;
    $("user-id").textContent = me.id;
    await Promise.all([loadOptions(), refreshPhotos(), refreshJobs()]);
  } catch (error) {
    $("signin-error").textContent = `Cannot sign in: ${error.message}`;
  }
}

$("signin-form").addEventListener("submit", (event) => { event.preventDefault(); signIn($("token").value); });
$("signup").addEventListener("click", async () => {
  const response = await fetch("/v1/users", { method: "POST" });
  const body = await response.json();
  if (!response.ok) { $("signin-error").textContent = body.detail; return; }
  $("new-token").hidden = false;
  $("new-token-value").textContent = body.token;
  $("token").value = body.token;
  await signIn(body.token);
  $("signin").hidden = false;
  $("signin-form").hidden = true;
});
$("signout").addEventListener("click", () => { localStorage.removeItem("portraitist-token"); location.reload(); });
$("delete-me").addEventListener("click", async () => {
  if (!confirm("Delete your account, photos, models and portraits for good?")) return;
  await api("/v1/me", { method: "DELETE" });
  localStorage.removeItem("portraitist-token");
  location.reload();
});

// ---- photos
async function upload(files) {
  const form = new FormData();
  const previews = {};
  for (const file of files) {
    form.append("files", file);
    previews[file.name] = URL.createObjectURL(file);
  }
  $("upload-results").textContent = "Checking your photos…";
  try {
    const result = await api("/v1/photos", { method: "POST", body: form });
    $("upload-results").textContent = "";
    for (const photo of result.photos) {
      const caption = photo.status === "kept" ? `✓ ${photo.name}` : `✗ ${photo.name}: ${photo.message} (${photo.reason})`;
      $("upload-results").append(figure(previews[photo.name] || "", caption, photo.status));
    }
  } catch (error) {
    $("upload-results").textContent = `Upload failed: ${error.message}`;
  }
  await refreshPhotos();
}

async function refreshPhotos() {
  const { photos } = await api("/v1/photos");
  $("photo-count").textContent = `${photos.length} photo${photos.length === 1 ? "" : "s"} stored.`;
}

$("files").addEventListener("change", () => upload($("files").files));
for (const name of ["dragenter", "dragover"]) {
  $("drop").addEventListener(name, (event) => { event.preventDefault(); $("drop").classList.add("over"); });
}
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (event) => {
  event.preventDefault();
  $("drop").classList.remove("over");
  upload(event.dataTransfer.files);
});

// ---- styles and starting a job
async function loadOptions() {
  const options = await api("/v1/options");
  $("styles").textContent = "";
  options.styles.forEach((style, index) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = style.name;
    box.checked = index < 3;
    label.append(box, ` ${style.name}`);
    label.title = style.description;
    $("styles").append(label);
  });
  $("base").textContent = "";
  for (const base of options.bases) $("base").append(new Option(base, base));
  $("n").max = options.max_images;
}

$("start").addEventListener("click", async () => {
  $("job-error").textContent = "";
  const styles = [...document.querySelectorAll("#styles input:checked")].map((box) => box.value);
  const request = { base: $("base").value, styles, n: Number($("n").value), k: Number($("k").value) };
  if ($("steps").value) request.steps = Number($("steps").value);
  try {
    const { id } = await api("/v1/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    });
    watch(id);
    refreshJobs();
  } catch (error) {
    $("job-error").textContent = error.message;
  }
});

// ---- progress, from Server-Sent Events read with fetch (EventSource cannot send the token)
function showProgress(job) {
  const running = job.status === "running";
  // the pipeline's own "run" events only say that a stage finished: their message says which
  const stage = running && job.stage && job.stage !== "run" ? ` · ${job.stage}` : "";
  const step = stage && job.total ? ` ${job.step} / ${job.total}` : "";
  const eta = running && job.eta_s ? `, about ${Math.ceil(job.eta_s)} s left in this stage` : "";
  $("job-status").textContent = `${job.status}${stage}${step}${eta}` +
    (job.message ? ` · ${job.message}` : "") + (job.error ? `\n${job.error}` : "");
  if (job.status === "succeeded") $("bar").value = 1;
  else if (stage && job.total) $("bar").value = job.step / job.total;
  $("cancel").hidden = !["queued", "running"].includes(job.status);
}

async function watch(jobId) {
  currentJob = jobId;
  $("progress-section").hidden = false;
  $("results-section").hidden = true;
  showProgress(await api(`/v1/jobs/${jobId}`));
  let lastId = 0;
  while (currentJob === jobId) {
    try {
      const response = await fetch(`/v1/jobs/${jobId}/events`, {
        headers: { Authorization: `Bearer ${token}`, "Last-Event-ID": String(lastId) },
      });
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          if (!data || currentJob !== jobId) continue;
          const event = JSON.parse(data);
          lastId = event.id;
          showProgress(event);
          if (["succeeded", "failed", "cancelled"].includes(event.status)) {
            if (event.status === "succeeded") await showResults(jobId);
            refreshJobs();
            return;
          }
        }
      }
    } catch (error) {
      $("job-status").textContent += ` (connection lost, retrying: ${error.message})`;
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

$("cancel").addEventListener("click", () => currentJob && api(`/v1/jobs/${currentJob}/cancel`, { method: "POST" }));

async function showResults(jobId) {
  const results = await api(`/v1/jobs/${jobId}/results`);
  $("results-section").hidden = false;
  $("portraits").textContent = "";
  for (const portrait of results.portraits) {
    const fig = figure(portrait.url, "", "portrait");
    const link = document.createElement("a");
    link.href = portrait.url;
    link.download = portrait.name;
    link.textContent = `Download ${portrait.name}`;
    fig.querySelector("figcaption").append(link);
    $("portraits").append(fig);
  }
  $("report").hidden = !results.report_url;
  if (results.report_url) $("report").href = results.report_url;
}

async function refreshJobs() {
  const { jobs } = await api("/v1/jobs");
  $("jobs").textContent = "";
  for (const job of jobs) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = "#";
    link.textContent = `${new Date(job.created_at * 1000).toLocaleString()} · ${job.status}`;
    link.addEventListener("click", (event) => { event.preventDefault(); watch(job.id); });
    item.append(link);
    $("jobs").append(item);
  }
}

if (token) signIn(token);
