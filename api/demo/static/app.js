// The demo page: submit a job to the v2 API, follow it live, show the images.
// Plain browser JavaScript, no build step and no third-party code except the
// hCaptcha script, which is loaded only when the server requires a captcha.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("job-form");
  const submit = $("submit");
  const cancel = $("cancel");
  const FIELDS = ["prompt", "number", "resolution", "captcha"];
  const POLL_MS = 1000;
  // Without a required captcha the server accepts any non-empty value.
  const PLACEHOLDER_CAPTCHA = "demo-no-captcha";

  let captcha = { required: false, widget: null };
  let job = null; // {token, links, view, stream, poll, etaAt, etaS}
  let ticker = null;

  // -- start-up ---------------------------------------------------------------

  async function init() {
    let config;
    try {
      config = await getJSON("/v2/config");
    } catch (err) {
      showFormErrors([{ field: null, message: "The server cannot be reached: " + err.message }]);
      return;
    }
    buildForm(config);
    setUpCaptcha(config.captcha);
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    const resumed = /^#job=([0-9a-f]{32})$/.exec(location.hash);
    if (resumed) follow(resumed[1], { status: "/v2/jobs/" + resumed[1], events: "/v2/jobs/" + resumed[1] + "/events" });
  }

  function buildForm(config) {
    const select = $("resolution");
    select.replaceChildren();
    const list = $("examples");
    list.replaceChildren();
    for (const option of config.resolutions) {
      select.append(new Option(option.label, option.value));
      const button = document.createElement("button");
      button.type = "button";
      button.className = "example";
      button.textContent = option.example;
      button.setAttribute("aria-label", "Use example: " + option.example + " (" + option.label + ")");
      button.addEventListener("click", () => {
        $("prompt").value = option.example;
        select.value = option.value;
        $("prompt").focus();
      });
      const item = document.createElement("li");
      item.append(button);
      list.append(item);
    }
    select.value = config.default_resolution;
    const number = $("number");
    number.min = config.number.min;
    number.max = config.number.max;
    number.value = config.number.default;
  }

  function setUpCaptcha(config) {
    captcha.required = config.required;
    const note = $("captcha-note");
    if (!config.required) {
      note.textContent = "Captcha verification is off on this server (demo mode).";
      note.hidden = false;
      return;
    }
    if (!config.sitekey || !config.script) {
      note.textContent = "This server requires a captcha but has no site key configured.";
      note.hidden = false;
      return;
    }
    window.sdqCaptchaReady = () => {
      captcha.widget = window.hcaptcha.render("captcha", { sitekey: config.sitekey });
    };
    const script = document.createElement("script");
    script.src = config.script;
    script.async = true;
    script.onerror = () => {
      note.textContent = "The captcha could not be loaded; check the connection and reload.";
      note.hidden = false;
    };
    document.head.append(script);
  }

  function captchaResponse() {
    if (!captcha.required) return PLACEHOLDER_CAPTCHA;
    if (captcha.widget === null || !window.hcaptcha) return "";
    return window.hcaptcha.getResponse(captcha.widget);
  }

  function resetCaptcha() {
    // hCaptcha responses are single-use: every submission needs a new one.
    if (captcha.required && captcha.widget !== null && window.hcaptcha) {
      window.hcaptcha.reset(captcha.widget);
    }
  }

  // -- submitting -------------------------------------------------------------

  async function onSubmit(event) {
    event.preventDefault();
    clearErrors();
    const body = {
      prompt: $("prompt").value,
      number: $("number").value,
      resolution: $("resolution").value,
      captcha: captchaResponse(),
    };
    submit.disabled = true;
    submit.textContent = "Submitting…";
    try {
      const response = await fetch("/v2/jobs", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      const answer = await response.json().catch(() => ({}));
      if (response.status === 201) {
        $("gallery").replaceChildren();
        $("results").hidden = true;
        follow(answer.token, answer.links);
        return;
      }
      showFormErrors(answer.errors || [{ field: null, message: "Error " + response.status }]);
    } catch (err) {
      showFormErrors([{ field: null, message: "The server cannot be reached: " + err.message }]);
    } finally {
      resetCaptcha();
      submit.textContent = "Generate";
      submit.disabled = job !== null && !isTerminal(job.view);
    }
  }

  function clearErrors() {
    for (const name of FIELDS) {
      const message = $(name + "-error");
      message.hidden = true;
      message.textContent = "";
      const control = $(name);
      if (control) control.removeAttribute("aria-invalid");
    }
    $("form-errors").hidden = true;
    $("form-errors").replaceChildren();
  }

  function showFormErrors(errors) {
    const general = [];
    let first = null;
    for (const error of errors) {
      const message = error.field ? $(error.field + "-error") : null;
      if (!message) {
        general.push(error.message);
        continue;
      }
      message.textContent = message.textContent ? message.textContent + "; " + error.message : error.message;
      message.hidden = false;
      const control = $(error.field);
      if (control) {
        control.setAttribute("aria-invalid", "true");
        first = first || control;
      }
    }
    const box = $("form-errors");
    const all = errors.map((e) => e.message);
    const heading = document.createElement("p");
    heading.textContent = "Please fix: " + all.join(", ") + ".";
    box.replaceChildren(heading);
    box.hidden = false;
    if (first && first.focus) first.focus();
    else if (general.length) box.focus();
  }

  // -- following a job --------------------------------------------------------

  function follow(token, links) {
    stopFollowing();
    job = { token, links, view: null, stream: null, poll: null, etaAt: 0, etaS: null };
    history.replaceState(null, "", "#job=" + token);
    $("job").hidden = false;
    submit.disabled = true;
    cancel.hidden = false;
    announce("Job queued.");
    if ("EventSource" in window) listen(job);
    else poll(job);
    ticker = setInterval(renderEta, 1000);
  }

  function listen(current) {
    let failures = 0;
    const stream = new EventSource(current.links.events);
    current.stream = stream;
    stream.addEventListener("status", (event) => {
      failures = 0;
      update(current, JSON.parse(event.data));
    });
    stream.addEventListener("gone", () => {
      stream.close();
      lost(current);
    });
    stream.onerror = () => {
      // The browser reconnects by itself (sending Last-Event-ID); a stream that
      // keeps failing, or is refused, falls back to polling.
      failures += 1;
      if (stream.readyState === EventSource.CLOSED || failures >= 3) {
        stream.close();
        if (job === current && !isTerminal(current.view)) poll(current);
      }
    };
  }

  async function poll(current) {
    if (job !== current) return;
    try {
      const response = await fetch(current.links.status, { headers: { Accept: "application/json" } });
      if (response.status === 404) {
        lost(current);
        return;
      }
      if (response.ok) update(current, await response.json());
    } catch (err) {
      // a network blip: try again at the next tick
    }
    if (job === current && !isTerminal(current.view)) {
      current.poll = setTimeout(() => poll(current), POLL_MS);
    }
  }

  function stopFollowing() {
    if (!job) return;
    if (job.stream) job.stream.close();
    if (job.poll) clearTimeout(job.poll);
    if (ticker) clearInterval(ticker);
    ticker = null;
  }

  function isTerminal(view) {
    return !!view && ["complete", "failed", "cancelled"].includes(view.state);
  }

  function update(current, view) {
    if (job !== current) return;
    const before = current.view;
    current.view = view;
    current.etaS = view.eta_s;
    current.etaAt = Date.now();
    render(view);
    if (!before || before.state !== view.state || before.progress.done !== view.progress.done ||
        before.position !== view.position) {
      announce(sentence(view));
    }
    if (isTerminal(view)) finish(current, view);
  }

  function render(view) {
    $("fact-state").textContent = view.state;
    $("fact-position").textContent = view.position === null ? "–" : String(view.position);
    // The fraction counts denoising steps: the bar moves during a batch, not only
    // when an image is done.
    const fraction = view.progress.fraction || 0;
    $("fact-progress").textContent = view.progress.done + " of " + view.progress.total +
      (view.state === "pending" ? " (" + Math.round(fraction * 100) + " %)" : "");
    const bar = $("progress");
    bar.max = 1;
    bar.value = fraction;
    bar.setAttribute("aria-valuetext", Math.round(fraction * 100) + " percent");
    renderPreview(view);
    const notice = $("notice");
    notice.textContent = view.notice || "";
    notice.hidden = !view.notice;
    renderEta();
  }

  function renderPreview(view) {
    // A small JPEG of the image being drawn, about once a second while rendering.
    const box = $("preview-box");
    const image = $("preview");
    if (view.state !== "pending" || !view.preview) {
      box.hidden = true;
      return;
    }
    if (image.getAttribute("src") !== view.preview) image.src = view.preview;
    box.hidden = false;
  }

  function renderEta() {
    if (!job || !job.view) return;
    const cell = $("fact-eta");
    if (isTerminal(job.view)) {
      cell.textContent = "–";
    } else if (job.etaS === null || job.etaS === undefined) {
      cell.textContent = "unknown";
    } else {
      const left = Math.max(0, job.etaS - (Date.now() - job.etaAt) / 1000);
      cell.textContent = left < 1 ? "any moment" : "≈ " + duration(left);
    }
  }

  function duration(seconds) {
    const s = Math.round(seconds);
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    return m + " min " + String(s % 60).padStart(2, "0") + " s";
  }

  function sentence(view) {
    switch (view.state) {
      case "new":
        if (view.queue_paused) {
          return "The queue is paused; your job keeps its place (" + view.position + " ahead of it).";
        }
        return view.position === 0 ? "Your job is next in the queue." :
          "Your job is queued; " + view.position + " ahead of it.";
      case "pending":
        return "Rendering: " + view.progress.done + " of " + plural(view.progress.total, "image") + " done.";
      case "complete":
        return "Done: " + plural(view.progress.total, "image") + " ready.";
      case "failed":
        return "The job failed. " + (view.notice || "");
      case "cancelled":
        return "The job was cancelled.";
      default:
        return view.state;
    }
  }

  function plural(count, noun) {
    return count + " " + noun + (count === 1 ? "" : "s");
  }

  function announce(text) {
    $("status").textContent = text;
  }

  function finish(current, view) {
    if (current.stream) current.stream.close();
    if (current.poll) clearTimeout(current.poll);
    cancel.hidden = true;
    submit.disabled = false;
    if (view.state === "complete") showImages(view);
  }

  function lost(current) {
    if (job !== current) return;
    announce("This job is unknown or has expired.");
    cancel.hidden = true;
    submit.disabled = false;
    stopFollowing();
  }

  function showImages(view) {
    const gallery = $("gallery");
    gallery.replaceChildren();
    const [width, height] = view.resolution.split("x").map(Number);
    (view.images || []).forEach((url, index) => {
      const image = document.createElement("img");
      image.src = url;
      image.width = width;
      image.height = height;
      image.loading = "lazy";
      image.alt = "Image " + (index + 1) + " of " + view.images.length + ": " + view.prompt;
      const link = document.createElement("a");
      link.href = url;
      link.target = "_blank";
      link.rel = "noopener";
      link.append(image);
      const item = document.createElement("li");
      item.append(link);
      gallery.append(item);
    });
    $("results").hidden = !(view.images && view.images.length);
  }

  async function onCancel() {
    if (!job) return;
    const current = job;
    cancel.disabled = true;
    try {
      const response = await fetch(current.links.status, { method: "DELETE" });
      const answer = await response.json().catch(() => ({}));
      if (response.ok) update(current, answer);
      else if (answer.errors) announce(answer.errors.map((e) => e.message).join(", "));
    } catch (err) {
      announce("The server cannot be reached: " + err.message);
    } finally {
      cancel.disabled = false;
    }
  }

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error("HTTP " + response.status);
    return response.json();
  }

  init();
})();
