/* The live page (DESIGN section 12): the fleet from GET /v1/snapshot, live from GET /v1/stream.
 *
 * The key travels only as `Authorization: Bearer`, so the stream is read with fetch() and a
 * stream reader (EventSource cannot send headers, and a key in a query string ends up in logs);
 * the SSE text is parsed here, and `Last-Event-ID` is sent as a header on reconnect.
 * Everything is bounded (ticker rows, one chart per device, reused), so an unattended screen
 * keeps a flat memory for hours.
 */
(() => {
  "use strict";

  const KEY_STORE = "telemetry.key";
  const params = new URLSearchParams(location.search);
  const KIOSK = params.get("kiosk") === "1";
  // Kiosk: seconds per screen (one type, or one screenful of a large type).
  const CYCLE_MS = Math.min(600, Math.max(3, Number(params.get("cycle")) || 12)) * 1000;
  const TICKER_ROWS = 30; // rows kept in the ticker; older ones are removed from the DOM
  const SNAPSHOT_LIVE_MS = 60000; // with the stream live: refresh sparklines and link figures
  const SNAPSHOT_POLL_MS = 10000; // without a stream on this API: poll instead
  const STALE_STREAM_MS = 45000; // no byte for 3 heartbeats (15 s each): the stream is dead
  const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000, 30000]; // then 30 s, with jitter
  const STREAM_ABSENT_RETRY_MS = 60000;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  // ---- state ------------------------------------------------------------------------------
  const types = new Map(); // name -> {name, description, fields, series_fields, section, grid}
  const devices = new Map(); // id -> {data, card, parts, chart}
  let window0 = null; // {start (s), every (s), buckets}
  let lastEventId = null;
  let streamState = "connecting"; // connecting | live | down | absent
  let apiDown = false; // the last snapshot fetch failed on the network or a 5xx
  let downReason = "Disconnected from the API";
  let retryAt = 0;
  let lastData = null; // Date of the last successful answer or event
  let snapshotTimer = 0;
  let snapshotBusy = false;
  let streamStarted = false;
  let resolveKey = null;

  // ---- the key ----------------------------------------------------------------------------
  function takeKeyFromFragment() {
    const m = /(?:^#|[#&])key=([^&]*)/.exec(location.hash);
    if (!m) return;
    try {
      sessionStorage.setItem(KEY_STORE, decodeURIComponent(m[1]));
    } catch (_) {
      sessionStorage.setItem(KEY_STORE, m[1]);
    }
    // Off the address bar (and out of history, bookmarks and screenshots) at once.
    history.replaceState(null, "", location.pathname + location.search);
  }

  function authHeaders(extra) {
    const key = sessionStorage.getItem(KEY_STORE);
    const h = Object.assign({}, extra || {});
    if (key) h.Authorization = "Bearer " + key;
    return h;
  }

  class AuthError extends Error {
    constructor(status, retryAfter) {
      super("auth " + status);
      this.status = status;
      this.retryAfter = retryAfter;
    }
  }

  function showKeyForm(err) {
    const had = !!sessionStorage.getItem(KEY_STORE);
    let msg = "This API needs a key: type the one `telemetry dev` printed, or one of TELEMETRY_API_KEYS.";
    if (err && err.status === 429) {
      msg = "Too many wrong keys from this browser: the API refuses it for " +
        (err.retryAfter || "a few") + " s. Wait, then type the right key.";
    } else if (had) {
      msg = "Wrong key: the API refused it (401 Unauthorized). Type the key that `telemetry dev` printed, or one of TELEMETRY_API_KEYS.";
    }
    sessionStorage.removeItem(KEY_STORE);
    $("keymsg").textContent = msg;
    $("keyform").hidden = false;
    $("layout").hidden = true;
    $("forget").hidden = true;
    setConn("key", "key needed");
    if (!KIOSK) $("key").focus();
  }

  function keyGiven() {
    return new Promise((resolve) => { resolveKey = resolve; });
  }

  $("keyform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const key = $("key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORE, key);
    $("key").value = "";
    $("keyform").hidden = true;
    $("keymsg").textContent = "";
    if (resolveKey) {
      const r = resolveKey;
      resolveKey = null;
      r();
    }
    refreshSnapshot();
  });

  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    location.reload();
  });

  // ---- connection display -----------------------------------------------------------------
  function setConn(state, text) {
    const c = $("conn");
    c.dataset.state = state;
    c.textContent = text;
  }

  function hhmmss(d) {
    return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }

  function renderConn() {
    const banner = $("banner");
    const down = apiDown || streamState === "down";
    if (down) {
      const secs = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
      setConn("down", "disconnected");
      banner.hidden = false;
      banner.textContent = (apiDown ? downReason : "Disconnected from the API") + ": " +
        (secs > 0 ? "retrying in " + secs + " s" : "retrying now") +
        (lastData ? " · last data at " + hhmmss(lastData) : "");
    } else {
      banner.hidden = true;
      if (streamState === "live") setConn("live", "live");
      else if (streamState === "absent") setConn("polling", "updating every " + SNAPSHOT_POLL_MS / 1000 + " s");
      else setConn("connecting", "connecting…");
    }
  }
  setInterval(renderConn, 1000);

  function backoff(attempt) {
    const base = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
    return Math.round(base * (0.75 + Math.random() * 0.5)); // jitter: screens don't sync up
  }

  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  // ---- the snapshot -----------------------------------------------------------------------
  let snapshotFailures = 0;

  async function refreshSnapshot() {
    if (snapshotBusy) return;
    snapshotBusy = true;
    clearTimeout(snapshotTimer);
    let next = streamState === "live" ? SNAPSHOT_LIVE_MS : SNAPSHOT_POLL_MS;
    try {
      const resp = await fetch("/v1/snapshot?series=first", { headers: authHeaders(), cache: "no-store" });
      if (resp.status === 401 || resp.status === 429) {
        throw new AuthError(resp.status, resp.headers.get("Retry-After"));
      }
      if (!resp.ok) {
        downReason = resp.status === 503
          ? "The API cannot read its database"
          : "The API answered " + resp.status;
        throw new Error("snapshot answered " + resp.status);
      }
      const snap = await resp.json();
      apiDown = false;
      snapshotFailures = 0;
      lastData = new Date();
      render(snap);
      if (!streamStarted) {
        streamStarted = true;
        streamLoop();
      }
    } catch (err) {
      if (err instanceof AuthError) {
        snapshotBusy = false;
        showKeyForm(err);
        return; // the form's submit fetches again
      }
      if (!(err instanceof Error && /^snapshot answered/.test(err.message))) {
        downReason = "Disconnected from the API";
      }
      apiDown = true;
      next = backoff(snapshotFailures++);
      retryAt = Date.now() + next;
    } finally {
      snapshotBusy = false;
      renderConn();
    }
    snapshotTimer = setTimeout(refreshSnapshot, next);
  }

  function render(snap) {
    const start = Date.parse(snap.start) / 1000;
    const every = parseDuration(snap.every);
    window0 = { start, every, buckets: snap.buckets };
    for (const t of snap.types) {
      let entry = types.get(t.name);
      if (!entry) {
        entry = Object.assign({}, t, makeSection(t));
        types.set(t.name, entry);
      } else {
        Object.assign(entry, t);
      }
    }
    const seen = new Set();
    let added = false;
    for (const d of snap.devices) {
      seen.add(d.device);
      let rec = devices.get(d.device);
      if (!rec) {
        rec = { data: d, card: null, parts: null, chart: null, spark: null };
        devices.set(d.device, rec);
        added = true;
      } else {
        rec.data = d;
      }
      updateCard(rec);
      if (rec.chart) rec.chart.setData(chartData(rec));
    }
    for (const [id, rec] of devices) {
      if (!seen.has(id)) dropDevice(id, rec);
    }
    if (added) placeCards();
    for (const t of types.values()) {
      const n = [...devices.values()].filter((r) => r.data.type === t.name).length;
      t.count.textContent = n + (n === 1 ? " device" : " devices");
      t.section.hidden = n === 0;
    }
    renderCounts();
    renderAlarms();
    $("keyform").hidden = true;
    $("layout").hidden = false;
    $("forget").hidden = !sessionStorage.getItem(KEY_STORE);
    if (KIOSK) kioskStart();
    document.body.dataset.ready = "1";
    // for bench/page_bench.py: when the first snapshot was drawn
    if (!performance.getEntriesByName("telemetry:rendered").length) performance.mark("telemetry:rendered");
  }

  function parseDuration(text) {
    const m = /^(\d+)([smhd])$/.exec(text || "");
    if (!m) return 3600;
    return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2]];
  }

  function makeSection(t) {
    const section = el("section", "type");
    section.dataset.type = t.name;
    const head = el("header");
    head.append(el("h2", "", t.name.replace(/_/g, " ")));
    const count = el("span", "badge", "");
    head.append(count, el("span", "desc", t.description));
    const grid = el("div", "grid");
    section.append(head, grid);
    section.hidden = true;
    $("fleet").append(section);
    return { section, grid, count };
  }

  function placeCards() {
    const sorted = [...devices.values()].sort((a, b) =>
      a.data.type === b.data.type
        ? (a.data.device < b.data.device ? -1 : 1)
        : (a.data.type < b.data.type ? -1 : 1));
    for (const rec of sorted) {
      const t = types.get(rec.data.type);
      if (t) t.grid.append(rec.card); // append moves an existing card: no copy, no leak
    }
  }

  function dropDevice(id, rec) {
    if (rec.chart) rec.chart.destroy();
    if (rec.spark) sparkObserver.unobserve(rec.spark);
    if (rec.card) rec.card.remove();
    devices.delete(id);
  }

  // ---- a device's card --------------------------------------------------------------------
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") {
      const a = Math.abs(v);
      return a >= 1000 ? Math.round(v).toLocaleString() : String(Math.round(v * 100) / 100);
    }
    return String(v);
  }

  function ago(iso) {
    const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }

  function buildCard(rec) {
    const d = rec.data;
    const t = types.get(d.type);
    const card = el("article", "card");
    card.dataset.device = d.device;
    card.dataset.type = d.type;
    const head = el("div", "head");
    const id = el("span", "id", d.device);
    const state = el("span", "state", "");
    const seen = el("span", "seen", "");
    head.append(id, state, seen);
    const values = el("dl", "values");
    const valueEls = {};
    for (const [name, info] of Object.entries(t ? t.fields : {})) {
      const box = el("div");
      const dd = el("dd");
      const num = el("span", "num", "–");
      dd.append(num, el("span", "unit", info.unit));
      box.append(el("dt", "", name.replace(/_/g, " ")), dd);
      values.append(box);
      valueEls[name] = num;
    }
    const spark = el("div", "spark");
    spark.title = t && t.series_fields.length ? t.series_fields[0].replace(/_/g, " ") + ", last 24 h" : "";
    const link = el("div", "linkline");
    card.append(head, values, spark, link);
    rec.card = card;
    rec.spark = spark;
    rec.parts = { state, seen, valueEls, link };
    spark._rec = rec;
    sparkObserver.observe(spark);
  }

  function updateCard(rec) {
    if (!rec.card) buildCard(rec);
    const d = rec.data;
    const p = rec.parts;
    const st = d.status ? d.status.state : null;
    rec.card.className = "card " + (st || "unknown");
    p.state.textContent = st || "";
    p.seen.textContent = ago(d.last_seen);
    p.seen.title = d.last_seen;
    const latest = d.latest || {};
    for (const [name, e] of Object.entries(p.valueEls)) e.textContent = fmt(latest[name]);
    const l = d.link || {};
    p.link.replaceChildren(
      stat("stations", l.stations),
      stat("RSSI", l.rssi === null || l.rssi === undefined ? null : Math.round(l.rssi) + " dBm"),
      stat("loss 24 h", l.loss === null || l.loss === undefined ? null : (Math.round(l.loss * 1000) / 10) + " %"),
    );
  }

  function stat(label, value) {
    const s = el("span", "", label + " ");
    s.append(el("b", "", value === null || value === undefined ? "–" : String(value)));
    return s;
  }

  // ---- sparklines: created when first visible, then reused --------------------------------
  const sparkObserver = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (e.isIntersecting && e.target._rec && !e.target._rec.chart) makeChart(e.target._rec);
    }
  }, { rootMargin: "200px" });

  function chartData(rec) {
    const t = types.get(rec.data.type);
    const field = t && t.series_fields[0];
    const ys = (field && rec.data.series[field]) || [];
    const xs = ys.map((_, i) => window0.start + i * window0.every);
    return [xs, ys];
  }

  function makeChart(rec) {
    if (typeof uPlot === "undefined" || !window0) return;
    const w = Math.max(80, rec.spark.clientWidth);
    const h = Math.max(24, rec.spark.clientHeight);
    rec.chart = new uPlot({
      width: w,
      height: h,
      pxAlign: false,
      cursor: { show: false },
      legend: { show: false },
      select: { show: false },
      scales: { x: { time: true } },
      axes: [{ show: false }, { show: false }],
      series: [{}, { stroke: "#58a6ff", width: 2, fill: "rgba(88,166,255,0.12)", spanGaps: true, points: { show: false } }],
    }, chartData(rec), rec.spark);
  }

  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const rec of devices.values()) {
        if (rec.chart) rec.chart.setSize({ width: Math.max(80, rec.spark.clientWidth), height: Math.max(24, rec.spark.clientHeight) });
      }
    }, 200);
  });

  // Relative times ("12 s ago") move on without data.
  setInterval(() => {
    for (const rec of devices.values()) if (rec.parts) rec.parts.seen.textContent = ago(rec.data.last_seen);
  }, 5000);

  // ---- fleet counts and alarms ------------------------------------------------------------
  function renderCounts() {
    const by = { online: 0, late: 0, offline: 0 };
    let known = 0;
    for (const rec of devices.values()) {
      const st = rec.data.status && rec.data.status.state;
      if (st in by) { by[st] += 1; known += 1; }
    }
    const box = $("counts");
    const parts = [el("span", "count", devices.size + " devices")];
    if (known) {
      for (const [st, n] of Object.entries(by)) {
        const c = el("span", "count " + st, n + " " + st);
        c.style.color = "var(--" + st + ")";
        parts.push(c);
      }
    }
    box.replaceChildren(...parts);
  }

  function renderAlarms() {
    const list = [];
    for (const rec of devices.values()) {
      const s = rec.data.status;
      if (!s) continue;
      for (const a of s.alarms || []) list.push({ a, d: rec.data });
    }
    list.sort((x, y) => (x.a.since || "") < (y.a.since || "") ? 1 : -1);
    const ul = $("alarms");
    ul.replaceChildren(...list.slice(0, 100).map(({ a, d }) => {
      const li = el("li");
      li.dataset.device = d.device;
      li.append(el("span", "kind", a.kind.replace(/_/g, " ")), " ",
        el("b", "", d.device), " " + d.type.replace(/_/g, " ") +
        (a.since ? " · since " + hhmmss(new Date(a.since)) : ""));
      return li;
    }));
    $("alarm-count").textContent = String(list.length);
    $("alarm-count").classList.toggle("hot", list.length > 0);
    $("alarms-empty").hidden = list.length > 0;
  }

  // ---- the stream -------------------------------------------------------------------------
  function onEvent(kind, data) {
    let body;
    try { body = JSON.parse(data); } catch (_) { return; }
    lastData = new Date();
    if (kind === "up") onUp(body);
    else if (kind === "status") onStatus(body);
  }

  function onUp(u) {
    const rec = devices.get(u.device);
    if (rec) {
      const d = rec.data;
      if (!d.last_seen || Date.parse(u.time) >= Date.parse(d.last_seen)) {
        d.last_seen = u.time;
        d.last_seq = u.seq;
        d.latest = Object.assign({ time: u.time }, u.values || {});
        d.link = Object.assign({}, d.link, { stations: u.stations, station: u.station, rssi: u.rssi, snr: u.snr });
        updateCard(rec);
        rec.card.classList.remove("flash");
        void rec.card.offsetWidth; // restart the animation
        rec.card.classList.add("flash");
      }
    } else {
      scheduleSoon(); // a device the page has not seen yet: the snapshot brings its card
    }
    tick(u);
  }

  function onStatus(s) {
    const rec = devices.get(s.device);
    if (!rec) { scheduleSoon(); return; }
    const since = s.time;
    const old = rec.data.status || { alarms: [] };
    rec.data.status = {
      state: s.state,
      since: s.state === old.state && old.since ? old.since : since,
      alarms: Array.isArray(s.alarms) ? s.alarms : old.alarms,
    };
    updateCard(rec);
    renderCounts();
    renderAlarms();
  }

  let soonTimer = 0;
  function scheduleSoon() {
    if (soonTimer) return;
    soonTimer = setTimeout(() => { soonTimer = 0; refreshSnapshot(); }, 1000);
  }

  // One row per transmission: a later copy heard by more stations comes as the same message
  // again (DESIGN 9) and raises that row's count, which is the merge happening before one's eyes.
  const tickerRows = new Map(); // device|seq|time -> li

  function tick(u) {
    const ol = $("ticker");
    $("ticker-note").hidden = true;
    const key = u.device + "|" + u.seq + "|" + u.time;
    const known = tickerRows.get(key);
    if (known) {
      known.dataset.stations = String(u.stations);
      known.querySelector(".st").replaceChildren(stationCount(u.stations));
      known.classList.remove("new");
      void known.offsetWidth; // restart the animation
      known.classList.add("new");
      return;
    }
    const li = el("li", "new");
    li.dataset.device = u.device;
    li.dataset.seq = String(u.seq);
    li.dataset.stations = String(u.stations);
    li.dataset.key = key;
    const st = el("span", "st");
    st.append(stationCount(u.stations));
    const t = types.get(u.type);
    const vals = Object.entries(u.values || {}).slice(0, 3).map(([k, v]) =>
      k.replace(/_/g, " ") + " " + fmt(v) + (t && t.fields[k] && t.fields[k].unit ? " " + t.fields[k].unit : ""));
    li.append(
      st,
      el("span", "who", u.device + " · " + (u.type || "").replace(/_/g, " ")),
      el("span", "when", hhmmss(new Date(u.time))),
      el("span", "what", (u.rssi !== null && u.rssi !== undefined ? Math.round(u.rssi) + " dBm · " : "") + vals.join(" · ")),
    );
    ol.prepend(li);
    tickerRows.set(key, li);
    while (ol.children.length > TICKER_ROWS) {
      const last = ol.lastElementChild;
      tickerRows.delete(last.dataset.key);
      last.remove();
    }
  }

  function stationCount(n) {
    const f = document.createDocumentFragment();
    f.append(String(n ?? "?"), el("small", "", n === 1 ? "station" : "stations"));
    return f;
  }

  /* An SSE parser (the WHATWG event-stream format) fed with decoded text chunks. */
  function sseParser(dispatch) {
    let buf = "";
    let kind = "";
    let data = [];
    return (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.search(/\r\n|\r|\n/)) >= 0) {
        if (buf[i] === "\r" && i === buf.length - 1) break; // a \r\n split across chunks
        const line = buf.slice(0, i);
        buf = buf.slice(buf[i] === "\r" && buf[i + 1] === "\n" ? i + 2 : i + 1);
        if (line === "") {
          if (data.length) dispatch(kind || "message", data.join("\n"));
          kind = "";
          data = [];
          continue;
        }
        if (line[0] === ":") continue; // a comment: the heartbeat
        const c = line.indexOf(":");
        const name = c < 0 ? line : line.slice(0, c);
        let value = c < 0 ? "" : line.slice(c + 1);
        if (value[0] === " ") value = value.slice(1);
        if (name === "event") kind = value;
        else if (name === "data") data.push(value);
        else if (name === "id" && value.indexOf("\0") < 0) lastEventId = value;
      }
    };
  }

  async function streamLoop() {
    let attempt = 0;
    for (;;) {
      const ctrl = new AbortController();
      let watchdog = 0;
      let overflow = false;
      let absent = false;
      try {
        const h = authHeaders({ Accept: "text/event-stream" });
        let url = "/v1/stream?events=up,status";
        if (lastEventId !== null) h["Last-Event-ID"] = lastEventId;
        else url += "&tail=" + TICKER_ROWS;
        const resp = await fetch(url, { headers: h, signal: ctrl.signal, cache: "no-store" });
        if (resp.status === 401 || resp.status === 429) {
          showKeyForm(new AuthError(resp.status, resp.headers.get("Retry-After")));
          await keyGiven();
          continue;
        }
        if (resp.status === 404) {
          absent = true; // an API without the stream: the snapshot is polled instead
          throw new Error("no stream");
        }
        if (!resp.ok || !resp.body) throw new Error("stream answered " + resp.status);
        const wasDown = attempt > 0 || streamState !== "connecting";
        streamState = "live";
        attempt = 0;
        renderConn();
        $("ticker-note").hidden = $("ticker").children.length > 0;
        // What happened while away: values, states and series come again from the snapshot.
        if (wasDown) refreshSnapshot();
        else { clearTimeout(snapshotTimer); snapshotTimer = setTimeout(refreshSnapshot, SNAPSHOT_LIVE_MS); }
        const reader = resp.body.getReader();
        const decoder = new TextDecoder();
        const feed = sseParser((kind, data) => {
          if (kind === "overflow") overflow = true;
          else onEvent(kind, data);
        });
        const kick = () => {
          clearTimeout(watchdog);
          watchdog = setTimeout(() => ctrl.abort(), STALE_STREAM_MS);
        };
        kick();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          kick();
          feed(decoder.decode(value, { stream: true }));
        }
      } catch (_) {
        // network error, abort by the watchdog, or no stream: all handled below
      } finally {
        clearTimeout(watchdog);
        ctrl.abort();
      }
      if (absent) {
        streamState = "absent";
        $("ticker-note").textContent = "This API has no live stream (GET /v1/stream); the page updates every " + SNAPSHOT_POLL_MS / 1000 + " s.";
        renderConn();
        await sleep(STREAM_ABSENT_RETRY_MS);
        continue;
      }
      if (overflow) {
        // Too far behind to resume: start afresh, the snapshot fills the gap.
        lastEventId = null;
      }
      streamState = "down";
      const wait = backoff(attempt++);
      retryAt = Date.now() + wait;
      renderConn();
      await sleep(wait);
    }
  }

  // ---- kiosk ------------------------------------------------------------------------------
  let kioskTimer = 0;
  let kioskIndex = -1;

  function kioskTypes() {
    return [...types.values()].filter((t) => !t.section.hidden);
  }

  function kioskShow(i) {
    const list = kioskTypes();
    if (!list.length) return;
    kioskIndex = ((i % list.length) + list.length) % list.length;
    for (const t of types.values()) t.section.classList.toggle("current", t === list[kioskIndex]);
    $("fleet").scrollTop = 0;
  }

  function kioskStep() {
    const f = $("fleet");
    if (f.scrollTop + f.clientHeight < f.scrollHeight - 8) f.scrollTop += f.clientHeight; // next screenful
    else kioskShow(kioskIndex + 1);
  }

  function kioskStart() {
    if (kioskTimer) return;
    kioskShow(0);
    kioskTimer = setInterval(kioskStep, CYCLE_MS);
  }

  if (KIOSK) {
    document.body.classList.add("kiosk");
    // Browsers allow full screen only after a gesture; a stand runs `chromium --kiosk` instead.
    const full = () => {
      const r = document.documentElement.requestFullscreen;
      if (r && !document.fullscreenElement) document.documentElement.requestFullscreen().catch(() => {});
    };
    window.addEventListener("pointerdown", full, { once: true });
    window.addEventListener("keydown", full, { once: true });
  }

  // ---- start ------------------------------------------------------------------------------
  takeKeyFromFragment();
  refreshSnapshot();
})();
