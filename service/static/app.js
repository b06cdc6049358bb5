/*
 * customs-vision clerk page: log in with an API key, inspect documents and X-ray scans, compare
 * stamps and signatures with registered specimens, and (admin keys) register specimens.
 *
 * At log-in the page asks GET /v1/whoami who the key is ({name, role}), shows both, and offers only
 * what the role may do: scanner keys inspect; clerk keys also read specimens and stored reports;
 * admin keys also register and delete specimens.
 *
 * Plain browser JavaScript, no build step, nothing loaded from elsewhere. Every call goes to this
 * service's /v1 API with "Authorization: Bearer <key>". The key lives in sessionStorage only: it is
 * never put in a cookie or a URL, and it is forgotten when the tab closes or on "Log out".
 *
 * Coordinates: the API's boxes are [x1, y1, x2, y2] in pixels of the uploaded image. The report's
 * stored image (/v1/reports/{id}/image.png) may be downscaled (report.image.stored_width/height), so
 * boxes are scaled by stored_width / width before they are drawn or cut out.
 *
 * Everything the API returns is put on the page with textContent, never as HTML.
 */
"use strict";

(() => {
  const KEY_STORAGE = "customs-vision.api-key";
  /** Margin around a box when cutting a mark out, as a fraction of its size (as the service does). */
  const CROP_PAD = 0.08;
  /** How a similarity was scored (MatchOut.method in the API). */
  const METHOD_NAMES = { aligned: "aligned comparison", shape: "shape comparison", embedding: "embedding" };
  /** Specimens shown at once; more are reachable by filtering. */
  const MAX_SPECIMEN_ROWS = 100;
  /** Box colours by class id: distinct, and readable on both white paper and grey X-ray scans. */
  const PALETTE = ["#d1242f", "#0b63ce", "#8b2fc9", "#c25e00", "#087f5b", "#b3126e", "#5c6ac4", "#7a5c00"];
  /** The risk policy in words (detectors/xray.py: the highest level any single detection reaches). */
  const RISK_TEXT = {
    clear: "Clear: nothing reaches a review threshold.",
    review: "Review: look at the highlighted boxes and decide.",
    alarm: "Alarm: stop the item and search it by hand.",
  };

  const byId = (id) => document.getElementById(id);

  // ------------------------------------------------------------------------------ API calls

  /** A failed API call: HTTP status (0 when the service was not reached) and the body's fields. */
  class ApiError extends Error {
    constructor(status, code, detail, retryAfter) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
      this.retryAfter = retryAfter;
    }
  }

  function storedKey() {
    return sessionStorage.getItem(KEY_STORAGE);
  }

  /**
   * Call the API. `as` is "json" (default), "blob" or "none". Throws ApiError on any failure.
   * `key` overrides the stored key (used to check a key before keeping it).
   */
  async function api(path, { method = "GET", body = null, as = "json", key = storedKey() } = {}) {
    let response;
    try {
      response = await fetch(path, {
        method,
        body,
        headers: { Authorization: `Bearer ${key || ""}`, Accept: as === "blob" ? "image/png" : "application/json" },
        cache: "no-store",
        credentials: "omit",
      });
    } catch (err) {
      throw new ApiError(0, "network", "The service could not be reached; check the connection and try again.");
    }
    if (!response.ok) {
      let code = "";
      let detail = "";
      try {
        const payload = await response.json();
        code = String(payload.error || "");
        detail = String(payload.detail || "");
      } catch (err) {
        // Not the API's JSON error body (a proxy's page, say): fall back to the status line.
      }
      throw new ApiError(
        response.status,
        code,
        detail || `${response.status} ${response.statusText}`.trim(),
        response.headers.get("Retry-After"),
      );
    }
    if (as === "blob") return response.blob();
    if (as === "json" && response.status !== 204) return response.json();
    return null;
  }

  /** One plain sentence or two for a failure while trying to `action` ("register specimens"). */
  function explain(err, action) {
    if (!(err instanceof ApiError)) {
      return `The page could not ${action}: ${err && err.message ? err.message : err}`;
    }
    const detail = err.detail;
    switch (err.status) {
      case 0:
        return detail;
      case 401:
        return `Key not recognised: ${detail} Log in again with a valid key.`;
      case 403:
        return `Your role cannot ${action}. ${detail}`;
      case 413:
        return `The file is too large. ${detail}`;
      case 415:
        return `That file is not an image the service can read. ${detail}`;
      case 503: {
        const wait = err.retryAfter ? ` Try again in ${err.retryAfter} seconds.` : " Try again shortly.";
        return `The service cannot ${action} right now. ${detail}${wait}`;
      }
      default:
        return err.status >= 500 ? `The service failed to ${action}. ${detail}` : detail;
    }
  }

  // ----------------------------------------------------------------------------- DOM helpers

  /** Make an element: el("td", { className: "num" }, "12.5 %", child, ...). */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name in node) node[name] = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function showMessage(id, text) {
    const node = byId(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  function setStatus(id, text) {
    byId(id).textContent = text || "";
  }

  /** Run `task` with `button` disabled and a status line; failures go to `errorId` in plain words. */
  async function busy(button, statusId, statusText, errorId, action, task) {
    showMessage(errorId, "");
    setStatus(statusId, statusText);
    button.disabled = true;
    try {
      await task();
    } catch (err) {
      setStatus(statusId, "");
      if (err instanceof ApiError && err.status === 401 && storedKey()) {
        logOut(explain(err, action));
        return;
      }
      showMessage(errorId, explain(err, action));
    } finally {
      button.disabled = false;
    }
  }

  /** Object URLs made for one part of the page, released together when that part is redrawn. */
  class UrlPool {
    constructor() {
      this.urls = [];
    }
    make(blob) {
      const url = URL.createObjectURL(blob);
      this.urls.push(url);
      return url;
    }
    release() {
      this.urls.forEach((url) => URL.revokeObjectURL(url));
      this.urls = [];
    }
  }

  const reportUrls = new UrlPool();
  const specimenUrls = new UrlPool();

  const pct = (value) => `${Number(value).toFixed(2)} %`;
  const fixed1 = (value) => Number(value).toFixed(1);
  const when = (iso) => {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  };

  // ----------------------------------------------------------------------------- session

  /** Who is logged in, from GET /v1/whoami: { name, role }; null when logged out. */
  let who = null;
  /** The report on show (for "Download annotated PNG"). */
  let currentReport = null;

  /** What each role is shown as beside the key's name. */
  const ROLE_TEXT = {
    scanner: "scanner (inspection only)",
    clerk: "clerk",
    admin: "admin",
  };

  /** Clerk and admin keys read specimens and stored reports; any other role only inspects. */
  const canRead = () => who !== null && (who.role === "clerk" || who.role === "admin");
  /** Only admin keys register and delete specimens. */
  const canRegister = () => who !== null && who.role === "admin";

  /** Ask the service who `key` is: { name, role } (throws ApiError; 401 for an unknown key). */
  async function whoami(key) {
    const found = await api("/v1/whoami", { key });
    return { name: String(found.name), role: String(found.role) };
  }

  function enter(found) {
    who = found;
    byId("session-label").replaceChildren(
      "Signed in as ",
      el("bdi", { className: "session-name" }, found.name),
      " · role: ",
      el("span", { className: "session-role" }, ROLE_TEXT[found.role] || found.role),
    );
    byId("session").hidden = false;
    byId("login-section").hidden = true;
    byId("workspace").hidden = false;
    const reader = canRead();
    const admin = canRegister();
    byId("specimens-locked").hidden = reader;
    byId("specimens-body").hidden = !reader;
    byId("download-annotated").hidden = !reader;
    byId("register-locked").hidden = !reader || admin;
    byId("register-form").hidden = !admin;
    byId("specimens-actions").hidden = !admin;
    byId("specimens-body").classList.toggle("list-only", !admin);
    if (reader) refreshSpecimens();
  }

  function logOut(reason) {
    sessionStorage.removeItem(KEY_STORAGE);
    who = null;
    reportUrls.release();
    specimenUrls.release();
    currentReport = null;
    byId("session").hidden = true;
    byId("workspace").hidden = true;
    byId("report-section").hidden = true;
    byId("specimens-rows").replaceChildren();
    for (const form of ["login-form", "inspect-form", "register-form", "filter-form"]) byId(form).reset();
    for (const id of ["inspect-error", "register-error", "specimens-error", "report-error"]) showMessage(id, "");
    updateModality();
    byId("login-section").hidden = false;
    showMessage("login-error", reason || "");
    setStatus("login-status", reason ? "" : "You are logged out.");
    byId("api-key").focus();
  }

  async function onLogin(event) {
    event.preventDefault();
    const input = byId("api-key");
    const key = input.value.trim();
    const button = event.submitter || byId("login-form").querySelector("button");
    if (!key) {
      showMessage("login-error", "Type or paste your API key first.");
      input.focus();
      return;
    }
    await busy(button, "login-status", "Checking the key…", "login-error", "log in", async () => {
      const found = await whoami(key);
      sessionStorage.setItem(KEY_STORAGE, key);
      input.value = "";
      setStatus("login-status", "");
      enter(found);
      byId("inspect-title").focus();
    });
  }

  // ----------------------------------------------------------------------------- inspection

  function modality() {
    return byId("inspect-form").querySelector("input[name=modality]:checked").value;
  }

  function updateModality() {
    byId("owners-field").hidden = modality() !== "document";
  }

  function claimedOwners() {
    return byId("owners")
      .value.split("\n")
      .map((s) => s.trim())
      .filter(Boolean);
  }

  async function onInspect(event) {
    event.preventDefault();
    const file = byId("inspect-image").files[0];
    if (!file) {
      showMessage("inspect-error", "Choose an image file first.");
      byId("inspect-image").focus();
      return;
    }
    const kind = modality();
    const form = new FormData();
    form.append("image", file, file.name);
    if (kind === "document") claimedOwners().forEach((owner) => form.append("owner", owner));
    const path = kind === "xray" ? "/v1/xray/inspect" : "/v1/documents/inspect";
    await busy(byId("inspect-submit"), "inspect-status", "Inspecting…", "inspect-error", "inspect images", async () => {
      const report = await api(path, { method: "POST", body: form });
      setStatus("inspect-status", "Inspection done.");
      await showReport(report, file);
    });
  }

  /** The report's image: the stored copy (clerk keys), else the local file the browser can decode. */
  async function reportImage(report, file) {
    if (!canRead()) return createImageBitmap(file); // scanner keys may not read stored reports
    try {
      return await createImageBitmap(await api(`/v1/reports/${encodeURIComponent(report.id)}/image.png`, { as: "blob" }));
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 403)) throw err;
    }
    return createImageBitmap(file); // refused after all: the upload is the same image
  }

  async function showReport(report, file) {
    if (!storedKey()) return; // logged out while the inspection was running
    currentReport = report;
    reportUrls.release();
    showMessage("report-error", "");
    const section = byId("report-section");
    section.hidden = false;

    const isXray = report.modality === "xray";
    const dets = report.detections;
    byId("report-title").textContent = isXray ? "X-ray report" : "Document report";
    const models = Object.entries(report.models || {})
      .map(([name, version]) => `${name} ${version}`)
      .join(", ");
    const total = report.timings_ms && report.timings_ms.total !== undefined ? ` · ${fixed1(report.timings_ms.total)} ms` : "";
    byId("report-meta").textContent =
      `${report.image.width} × ${report.image.height} px · ${when(report.created_at)} · report ${report.id}` +
      (models ? ` · models: ${models}` : "") +
      total;

    const risk = byId("report-risk");
    risk.hidden = !isXray || !report.risk;
    risk.className = `risk risk-${report.risk || "none"}`;
    risk.replaceChildren();
    if (isXray && report.risk) {
      risk.append(el("span", { className: "risk-badge" }, report.risk.toUpperCase()), " ", RISK_TEXT[report.risk] || "");
    }

    fillDetections(dets);

    let bitmap = null;
    try {
      bitmap = await reportImage(report, file);
    } catch (err) {
      showMessage("report-error", `The image cannot be shown here (${explain(err, "read stored reports")}); the table below still lists what was found.`);
    }
    drawReport(report, bitmap);
    await fillMatches(report, bitmap);
    byId("report-title").focus();
  }

  function fillDetections(dets) {
    const rows = dets.map((d, i) =>
      el(
        "tr",
        {},
        el("td", {}, el("span", { className: "det-tag" }, String(i + 1))),
        el("td", {}, d.label),
        el("td", { className: "num" }, `${(d.confidence * 100).toFixed(1)} %`),
        el("td", { className: "mono" }, `[${d.box.map(fixed1).join(", ")}]`),
      ),
    );
    rows.forEach((row, i) => {
      row.querySelector(".det-tag").style.backgroundColor = PALETTE[dets[i].class_id % PALETTE.length];
    });
    byId("detections-body").replaceChildren(...rows);
    byId("detections-table").hidden = dets.length === 0;
    byId("detections-empty").hidden = dets.length !== 0;
  }

  /** Upscale factor for drawing small images legibly (boxes and labels at screen resolution). */
  function upscale(width, height, target, most = 4) {
    return Math.max(1, Math.min(most, target / Math.max(width, height)));
  }

  function drawReport(report, bitmap) {
    const canvas = byId("report-canvas");
    const caption = byId("report-caption");
    delete canvas.dataset.drawn;
    if (!bitmap) {
      canvas.hidden = true;
      caption.textContent = "";
      return;
    }
    canvas.hidden = false;
    const up = upscale(bitmap.width, bitmap.height, 960, 8);
    canvas.width = Math.round(bitmap.width * up);
    canvas.height = Math.round(bitmap.height * up);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingQuality = "high";
    ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    // Boxes are in uploaded pixels; the bitmap is the stored (maybe downscaled) copy.
    const s = (bitmap.width / report.image.width) * up;
    const line = Math.max(3, Math.round(canvas.width / 320));
    const font = Math.max(13, Math.round(canvas.width / 40));
    ctx.font = `600 ${font}px system-ui, "Noto Sans", NanumGothic, sans-serif`;
    ctx.textBaseline = "top";
    report.detections.forEach((d, i) => {
      const [x1, y1, x2, y2] = d.box.map((v) => v * s);
      const colour = PALETTE[d.class_id % PALETTE.length];
      ctx.lineWidth = line;
      ctx.strokeStyle = colour;
      ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
      const text = `${i + 1} ${d.label} ${(d.confidence * 100).toFixed(1)}%`;
      const w = ctx.measureText(text).width + 8;
      const h = font + 6;
      const ty = y1 - h >= 0 ? y1 - h : y1; // above the box, or inside it at the image's top edge
      ctx.fillStyle = colour;
      ctx.fillRect(x1 - line / 2, ty, w, h);
      ctx.fillStyle = "#ffffff";
      ctx.fillText(text, x1 + 4 - line / 2, ty + 3);
    });
    const labels = report.detections.map((d, i) => `${i + 1} ${d.label}`).join(", ");
    const n = report.detections.length;
    canvas.setAttribute(
      "aria-label",
      n ? `The inspected image with ${n} box${n === 1 ? "" : "es"} drawn: ${labels}.` : "The inspected image; nothing was detected.",
    );
    caption.textContent = n
      ? "Numbered boxes match the rows of the table below."
      : "Nothing was detected in this image.";
    canvas.dataset.drawn = "true";
  }

  /** Cut a detection out of the report image (with the service's margin) onto a new canvas. */
  function cropCanvas(report, bitmap, box, label) {
    const s = bitmap.width / report.image.width;
    const [bx1, by1, bx2, by2] = box;
    const dx = (bx2 - bx1) * CROP_PAD;
    const dy = (by2 - by1) * CROP_PAD;
    const x1 = Math.max(0, Math.floor((bx1 - dx) * s));
    const y1 = Math.max(0, Math.floor((by1 - dy) * s));
    const x2 = Math.min(bitmap.width, Math.ceil((bx2 + dx) * s));
    const y2 = Math.min(bitmap.height, Math.ceil((by2 + dy) * s));
    const w = Math.max(1, x2 - x1);
    const h = Math.max(1, y2 - y1);
    const up = upscale(w, h, 240);
    const canvas = el("canvas", { className: "mark-image", role: "img", "aria-label": label });
    canvas.width = Math.round(w * up);
    canvas.height = Math.round(h * up);
    canvas.getContext("2d").drawImage(bitmap, x1, y1, w, h, 0, 0, canvas.width, canvas.height);
    return canvas;
  }

  async function specimenImage(specimenId, alt) {
    const img = el("img", { className: "mark-image", alt });
    try {
      const blob = await api(`/v1/specimens/${encodeURIComponent(specimenId)}/image.png`, { as: "blob" });
      img.src = reportUrls.make(blob);
      return img;
    } catch (err) {
      return el("p", { className: "error" }, explain(err, "read specimens"));
    }
  }

  function verdictBadge(verdict) {
    return el("span", { className: `verdict verdict-${verdict}` }, verdict);
  }

  async function fillMatches(report, bitmap) {
    const block = byId("matches-block");
    const container = byId("matches");
    container.replaceChildren();
    const marks = report.detections
      .map((d, i) => ({ d, i }))
      .filter(({ d }) => d.label === "stamp" || d.label === "signature");
    block.hidden = report.modality !== "document" || marks.length === 0;
    if (block.hidden) return;
    const cards = await Promise.all(marks.map(({ d, i }) => matchCard(report, bitmap, d, i)));
    container.replaceChildren(...cards);
  }

  async function matchCard(report, bitmap, det, index) {
    const matches = report.matches.filter((m) => m.detection === index);
    const title = `#${index + 1} ${det.label}`;
    const card = el("article", { className: "match-card", "aria-label": title });
    card.append(el("h4", {}, el("span", { className: "det-tag" }, String(index + 1)), ` ${det.label}`));
    card.querySelector(".det-tag").style.backgroundColor = PALETTE[det.class_id % PALETTE.length];

    const found = bitmap
      ? cropCanvas(report, bitmap, det.box, `The ${det.label} found on the document`)
      : el("p", { className: "hint" }, "Image not available.");
    const best = matches[0];
    if (!best) {
      card.append(
        el("div", { className: "pair" }, el("figure", {}, found, el("figcaption", {}, "On this document"))),
        el("p", { className: "hint" }, `No ${det.label} specimens are registered to compare with.`),
      );
      return card;
    }
    const registered = await specimenImage(best.specimen_id, `Registered ${best.kind} of ${best.owner}`);
    card.append(
      el(
        "div",
        { className: "pair" },
        el("figure", {}, found, el("figcaption", {}, "On this document")),
        el(
          "figure",
          {},
          registered,
          el("figcaption", {}, "Registered: ", el("bdi", { className: "owner" }, best.owner), best.claimed ? " (claimed)" : ""),
        ),
      ),
      el(
        "p",
        { className: "similarity" },
        el("strong", { className: "similarity-value" }, pct(best.similarity)),
        " similar · ",
        verdictBadge(best.verdict),
        el(
          "span",
          { className: "hint" },
          ` threshold ${pct(best.threshold)} · ${METHOD_NAMES[best.method] || "embedding"}`,
        ),
      ),
    );
    if (matches.length > 1) {
      const others = matches.slice(1).map((m) =>
        el(
          "li",
          {},
          el("bdi", { className: "owner" }, m.owner),
          m.claimed ? " (claimed)" : "",
          ` · ${pct(m.similarity)} · `,
          verdictBadge(m.verdict),
        ),
      );
      card.append(el("details", {}, el("summary", {}, `Other candidates (${others.length})`), el("ul", {}, ...others)));
    }
    return card;
  }

  async function onDownloadAnnotated(event) {
    if (!currentReport) return;
    const report = currentReport;
    const button = event.currentTarget;
    await busy(button, "inspect-status", "Preparing the annotated image…", "report-error", "read stored reports", async () => {
      const blob = await api(`/v1/reports/${encodeURIComponent(report.id)}/annotated.png`, { as: "blob" });
      const url = reportUrls.make(blob);
      const link = el("a", { href: url, download: `report-${report.id}-annotated.png` });
      document.body.append(link);
      link.click();
      link.remove();
      setStatus("inspect-status", "");
    });
  }

  // ----------------------------------------------------------------------------- specimens

  async function refreshSpecimens() {
    if (!canRead()) return;
    const params = new URLSearchParams();
    const owner = byId("filter-owner").value.trim();
    const kind = byId("filter-kind").value;
    if (owner) params.set("owner", owner);
    if (kind) params.set("kind", kind);
    const query = params.toString();
    showMessage("specimens-error", "");
    try {
      const listing = await api(`/v1/specimens${query ? `?${query}` : ""}`);
      await fillSpecimens(listing);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return logOut(explain(err, "read specimens"));
      showMessage("specimens-error", explain(err, "read specimens"));
    }
  }

  async function fillSpecimens(listing) {
    specimenUrls.release();
    const shown = listing.specimens.slice(-MAX_SPECIMEN_ROWS).reverse(); // newest first
    const rows = await Promise.all(shown.map(specimenRow));
    byId("specimens-rows").replaceChildren(...rows);
    byId("specimens-caption").textContent =
      listing.count > shown.length
        ? `Specimens: the newest ${shown.length} of ${listing.count} (filter by owner to see others)`
        : `Specimens (${listing.count})`;
    byId("specimens-table").hidden = listing.count === 0;
    byId("specimens-empty").hidden = listing.count !== 0;
  }

  async function specimenRow(spec) {
    let picture;
    try {
      const blob = await api(spec.image_url, { as: "blob" });
      picture = el("img", { className: "thumb", src: specimenUrls.make(blob), alt: `${spec.kind} of ${spec.owner}` });
    } catch (err) {
      picture = el("span", { className: "hint" }, "unavailable");
    }
    let remove = null;
    if (canRegister()) {
      remove = el("button", { type: "button", className: "button-danger" }, "Delete");
      remove.setAttribute("aria-label", `Delete the ${spec.kind} of ${spec.owner}${spec.label ? ` (${spec.label})` : ""}`);
      remove.addEventListener("click", () => deleteSpecimen(spec, remove));
    }
    return el(
      "tr",
      { dataset: { specimenId: spec.id } },
      el("td", {}, picture),
      el("td", {}, spec.kind),
      el("td", {}, el("bdi", { className: "owner" }, spec.owner)),
      el("td", {}, spec.label || "—"),
      el("td", { className: "nowrap" }, when(spec.created_at)),
      remove ? el("td", {}, remove) : null,
    );
  }

  async function deleteSpecimen(spec, button) {
    const what = `the ${spec.kind} of ${spec.owner}${spec.label ? ` (${spec.label})` : ""}`;
    if (!window.confirm(`Delete ${what}? Documents will no longer be compared with it.`)) return;
    await busy(button, "specimens-status", `Deleting ${what}…`, "specimens-error", "delete specimens", async () => {
      await api(`/v1/specimens/${encodeURIComponent(spec.id)}`, { method: "DELETE", as: "none" });
      setStatus("specimens-status", `Deleted ${what}.`);
      await refreshSpecimens();
    });
  }

  async function onRegister(event) {
    event.preventDefault();
    const formEl = byId("register-form");
    const owner = byId("register-owner").value.trim();
    const file = byId("register-image").files[0];
    if (!owner || !file) {
      showMessage("register-error", !owner ? "Type the owner's name." : "Choose the specimen's image file.");
      (!owner ? byId("register-owner") : byId("register-image")).focus();
      return;
    }
    const form = new FormData();
    form.append("kind", byId("register-kind").value);
    form.append("owner", owner);
    form.append("label", byId("register-label").value.trim());
    form.append("image", file, file.name);
    const button = formEl.querySelector("button[type=submit]");
    await busy(button, "register-status", "Registering…", "register-error", "register specimens", async () => {
      const spec = await api("/v1/specimens", { method: "POST", body: form });
      formEl.reset();
      setStatus("register-status", `Registered the ${spec.kind} of ${spec.owner}.`);
      await refreshSpecimens();
    });
  }

  // ----------------------------------------------------------------------------- start

  function start() {
    byId("login-form").addEventListener("submit", onLogin);
    byId("logout").addEventListener("click", () => logOut(""));
    byId("inspect-form").addEventListener("submit", onInspect);
    byId("inspect-form").addEventListener("change", (e) => {
      if (e.target.name === "modality") updateModality();
    });
    byId("download-annotated").addEventListener("click", onDownloadAnnotated);
    byId("register-form").addEventListener("submit", onRegister);
    byId("filter-form").addEventListener("submit", (e) => {
      e.preventDefault();
      refreshSpecimens();
    });
    updateModality();

    const key = storedKey();
    if (!key) {
      byId("api-key").focus();
      return;
    }
    // A reload keeps the tab's key: check it again (it may have been revoked meanwhile).
    setStatus("login-status", "Checking the saved key…");
    whoami(key).then(
      (found) => {
        setStatus("login-status", "");
        enter(found);
      },
      (err) => logOut(explain(err, "log in")),
    );
  }

  start();
})();
