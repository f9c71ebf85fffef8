// The dashboard page's own script: no library, no network beyond its own data.
// Two modes (the <html data-mode> attribute): "web" fetches the JSON endpoint;
// "app" runs inside an MCP host and speaks the ext-apps JSON-RPC over postMessage:
// ui/initialize -> ui/notifications/initialized, then renders the tool results the
// host sends (ui/notifications/tool-result) and asks for more with tools/call.
(function () {
  "use strict";
  var root = document.documentElement;
  var MODE = root.dataset.mode === "app" ? "app" : "web";
  var ENDPOINT = root.dataset.endpoint || "/dashboard/data";
  var APPS_PROTOCOL = "2026-01-26";
  var TOOL = "dashboard";
  var COLORS = {
    rate_limit: "#d55e00", transient: "#e69f00", timeout: "#cc79a7", connection: "#0072b2",
    bad_response: "#56b4e9", empty_response: "#009e73", empty_stream: "#66a61e", auth: "#a40e26",
    not_found: "#7f7f7f", bad_request: "#8c564b", context_window: "#332288", content_policy: "#882255",
    unavailable: "#444444", unknown: "#bbbbbb"
  };
  var query = { since: "day", model: "", category: "", limit: "" };
  var openedFirst = false;

  function el(tag, attrs) {
    var svg = tag.indexOf("svg:") === 0;
    var node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4)) : document.createElement(tag);
    for (var k in attrs || {}) {
      if (attrs[k] === null || attrs[k] === undefined || attrs[k] === false) continue;
      if (k === "text") node.textContent = attrs[k];
      else if (k === "onclick") node.addEventListener("click", attrs[k]);
      else node.setAttribute(k, attrs[k] === true ? "" : String(attrs[k]));
    }
    for (var i = 2; i < arguments.length; i++) {
      var c = arguments[i];
      if (c === null || c === undefined) continue;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function color(cat) {
    if (COLORS[cat]) return COLORS[cat];
    var h = 0;
    for (var i = 0; i < cat.length; i++) h = (h * 31 + cat.charCodeAt(i)) % 360;
    return "hsl(" + h + ",55%,45%)";
  }
  function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z") : ""; }
  // Each tab has its own status line: what the Failures tab shows (the dump open in it) says nothing
  // about Spend or Models. An error from loading, which feeds every tab, shows on all of them.
  var statuses = { failures: ["", false], spend: ["", false], models: ["", false] };
  var shownTab = "failures";
  function status(text, bad, tab) {
    (tab ? [tab] : Object.keys(statuses)).forEach(function (t) { statuses[t] = [text, !!bad]; });
    var s = document.getElementById("status");
    s.textContent = statuses[shownTab][0];
    s.className = statuses[shownTab][1] ? "error" : "";
  }

  // -- getting data --------------------------------------------------------------

  var rpcId = 0;
  var pending = {};
  function post(msg) { window.parent.postMessage(msg, "*"); }
  function request(method, params) {
    var id = ++rpcId;
    return new Promise(function (resolve, reject) {
      pending[id] = { resolve: resolve, reject: reject };
      post({ jsonrpc: "2.0", id: id, method: method, params: params });
    });
  }
  function notify(method, params) { post({ jsonrpc: "2.0", method: method, params: params || {} }); }

  function fromToolResult(result) {
    if (!result) throw new Error("empty tool result");
    if (result.isError) {
      var t = (result.content || []).map(function (c) { return c.text || ""; }).join(" ");
      throw new Error(t || "the dashboard tool failed");
    }
    if (!result.structuredContent) throw new Error("the tool result carries no dashboard data");
    return result.structuredContent;
  }

  function fetchData(params) {
    var clean = {};
    for (var k in params) if (params[k]) clean[k] = params[k];
    if (MODE === "app") {
      return request("tools/call", { name: TOOL, arguments: clean }).then(fromToolResult);
    }
    var qs = new URLSearchParams(clean).toString();
    return fetch(ENDPOINT + (qs ? "?" + qs : ""), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("signed out"); }
        return r.json().then(function (body) {
          if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
          return body;
        });
      });
  }

  function load() {
    status("Loading…");
    return fetchData({ view: "failures", since: query.since, model: query.model, category: query.category, limit: query.limit })
      .then(render)
      .catch(function (e) { status(e.message, true); });
  }

  function openDump(id, focus) {
    status("Loading " + id + "…", false, "failures");
    return fetchData({ view: "dump", id: id })
      .then(function (data) {
        renderDetail(data.dump);
        status("Showing " + id, false, "failures");
        if (focus) document.querySelector("#detail h2").focus(); // keyboard users land on what they opened
      })
      .catch(function (e) { status(e.message, true, "failures"); });
  }

  // -- rendering -----------------------------------------------------------------

  function render(data) {
    if (data.failures) renderFailures(data.failures);
    if (data.dump) renderDetail(data.dump);
    var down = data.unavailable || {};
    if (data.spend) renderSpend(data.spend); else renderSection("spend", data.spend, down.spend);
    if (data.models) renderModels(data.models); else renderSection("models", data.models, down.models);
    var f = data.failures;
    status("", false);
    var partly = f && down.failures ? " (" + down.failures + ")" : "";
    status(f ? f.total + " failed request" + (f.total === 1 ? "" : "s") + " since " + when(f.start) + partly : "Ready", false, "failures");
    if (f && !openedFirst && f.newest.length) { openedFirst = true; openDump(f.newest[0].id); }
    if (MODE === "app") notify("ui/notifications/size-changed", { width: root.scrollWidth, height: root.scrollHeight });
  }

  function fillSelect(select, values, current) {
    clear(select).appendChild(el("option", { value: "", text: "any" }));
    values.forEach(function (v) { select.appendChild(el("option", { value: v, text: v, selected: v === current })); });
  }

  function renderFailures(f) {
    var form = document.getElementById("filters");
    form.elements.since.value = ["hour", "day", "week"].indexOf(f.since) >= 0 ? f.since : "day";
    fillSelect(form.elements.model, f.models, f.model || "");
    fillSelect(form.elements.category, f.categories, f.category || "");

    var cats = Object.keys(f.totals);
    var list = el("ul", { "aria-label": "Counts by category" });
    cats.forEach(function (c) {
      list.appendChild(el("li", { "data-category": c },
        el("span", { "class": "swatch", "aria-hidden": "true", style: null }), c + ": ",
        el("strong", { "data-testid": "count-" + c, text: String(f.totals[c]) })));
    });
    var summary = clear(document.getElementById("summary"));
    summary.appendChild(el("p", {}, "Total ", el("strong", { "data-testid": "total", text: String(f.total) }),
      " in this window; " + f.store_total + " stored" + (f.truncated ? " (counting stopped early: too many)" : "")));
    summary.appendChild(list);
    Array.prototype.forEach.call(list.querySelectorAll(".swatch"), function (s, i) { s.style.background = color(cats[i]); });
    renderChart(f, cats);
    renderTable(f.newest);
  }

  function renderChart(f, cats) {
    var fig = document.getElementById("chart");
    Array.prototype.slice.call(fig.querySelectorAll("svg")).forEach(function (s) { fig.removeChild(s); });
    var W = 960, H = 170, L = 36, B = 22, T = 8;
    var n = f.buckets.length;
    var max = 1;
    f.buckets.forEach(function (b) { if (b.total > max) max = b.total; });
    var bw = (W - L) / n;
    var svg = el("svg:svg", { viewBox: "0 0 " + W + " " + H, width: "100%", role: "img",
      "aria-label": f.total + " failed requests in " + n + " buckets of " + (f.bucket_seconds / 60) + " minutes" });
    var y = function (v) { return H - B - (H - B - T) * v / max; };
    svg.appendChild(el("svg:line", { x1: L, x2: W, y1: H - B, y2: H - B, stroke: "#d0d7de" }));
    svg.appendChild(el("svg:text", { x: L - 4, y: T + 8, "text-anchor": "end", text: String(max) }));
    svg.appendChild(el("svg:text", { x: L - 4, y: H - B, "text-anchor": "end", text: "0" }));
    var every = Math.max(1, Math.ceil(n / 8));
    f.buckets.forEach(function (b, i) {
      var x = L + i * bw, acc = 0;
      cats.forEach(function (c) {
        var v = b.counts[c] || 0;
        if (!v) return;
        var r = el("svg:rect", { x: x + 1, width: Math.max(1, bw - 2), y: y(acc + v), height: y(acc) - y(acc + v), fill: color(c) },
          el("svg:title", { text: when(b.start) + " " + c + ": " + v }));
        svg.appendChild(r);
        acc += v;
      });
      if (i % every === 0) {
        var label = f.bucket_seconds >= 86400 ? b.start.slice(5, 10) : f.bucket_seconds >= 21600 ? b.start.slice(5, 13).replace("T", " ") + "h" : b.start.slice(11, 16);
        svg.appendChild(el("svg:text", { x: x + 2, y: H - 6, text: label }));
      }
    });
    fig.insertBefore(svg, fig.firstChild);
  }

  function renderTable(rows) {
    var body = clear(document.querySelector("#newest tbody"));
    if (!rows.length) {
      body.appendChild(el("tr", {}, el("td", { colspan: 5, "data-testid": "no-dumps", text: "No failed requests in this window." })));
      return;
    }
    rows.forEach(function (r, i) {
      body.appendChild(el("tr", { "data-testid": "dump-row", "data-category": r.category },
        el("td", { "class": "when", text: when(r.timestamp) }), el("td", { text: r.category }), el("td", { text: r.model }),
        el("td", { text: String(r.attempt_count), title: r.outcome }),
        el("td", {}, el("button", { type: "button", "class": "link", "data-testid": i === 0 ? "newest-id" : null,
          "data-id": r.id, title: r.id, "aria-label": "Show dump " + r.id, text: "…" + r.id.slice(-8),
          onclick: function () { openDump(r.id, true); } }))));
    });
  }

  function renderDetail(d) {
    var box = clear(document.getElementById("detail"));
    box.hidden = false;
    box.appendChild(el("h2", { tabindex: "-1", "data-testid": "detail-id", text: d.id }));
    var facts = [["Model", d.model], ["Category", d.category], ["Outcome", d.outcome], ["Time", when(d.timestamp)],
      ["API base", d.api_base || "default"], ["Token estimate", d.estimated_tokens + (d.token_estimate_method ? " (" + d.token_estimate_method + ")" : "")],
      ["Messages", String(d.message_count)], ["Versions", "hive-mcp " + d.hive_mcp_version + ", litellm " + d.litellm_version + ", format " + d.format_version]];
    var dl = el("dl", { "class": "facts" });
    facts.forEach(function (f) { dl.appendChild(el("dt", { text: f[0] })); dl.appendChild(el("dd", { text: f[1] })); });
    box.appendChild(dl);
    box.appendChild(el("h3", { text: "Attempts" }));
    var ol = el("ol", { "class": "timeline", "data-testid": "attempts" });
    d.attempts.forEach(function (a) {
      ol.appendChild(el("li", { "data-testid": "attempt", "data-category": a.category, "data-status": a.status === null ? "" : a.status },
        el("strong", { text: "#" + a.index + " " + a.category }), " " + (a.status === null ? "no status" : "HTTP " + a.status),
        " at " + when(a.time) + (a.deployment ? " on " + a.deployment : ""),
        el("span", { "class": "delay", text: a.delay_s ? " — slept " + a.delay_s.toFixed(2) + " s" : "" }),
        a.message ? el("div", { text: a.message }) : null));
    });
    box.appendChild(ol);
    var msgs = el("details", { "data-testid": "messages" }, el("summary", { text: "Request messages (" + d.message_count + ")" + (d.messages_truncated ? ", shortened" : "") }));
    d.messages.forEach(function (m) { msgs.appendChild(el("h4", { text: m.role })); msgs.appendChild(el("pre", { text: m.content + (m.truncated ? "\n[…]" : "") })); });
    box.appendChild(msgs);
    if (MODE === "web") {
      box.appendChild(el("button", { type: "button", "class": "danger", text: "Delete this dump…", onclick: function () { deleteDump(d.id); } }));
    }
  }

  function deleteDump(id) {
    if (!window.confirm("Delete failed request " + id + "? This cannot be undone.")) return;
    fetch("/dashboard/dumps/" + encodeURIComponent(id) + "/delete", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ confirm: id }).toString()
    }).then(function (r) {
      return r.json().then(function (b) { if (!r.ok) throw new Error(b.error || "HTTP " + r.status); });
    }).then(function () { document.getElementById("detail").hidden = true; openedFirst = true; return load(); })
      .catch(function (e) { status(e.message, true, "failures"); });
  }

  function renderSection(name, value, unavailable) {
    var box = clear(document.querySelector("#view-" + name + " .section-body"));
    var title = name.charAt(0).toUpperCase() + name.slice(1);
    if (unavailable) { // its store did not answer: say so, not "not configured"
      box.appendChild(el("p", { "class": "not-configured", "data-testid": name + "-unavailable", text: title + ": unavailable (" + unavailable + ")." }));
    } else if (value === null || value === undefined) {
      box.appendChild(el("p", { "class": "not-configured", "data-testid": name + "-not-configured", text: title + ": not configured." }));
    } else {
      box.appendChild(el("pre", { text: JSON.stringify(value, null, 2) }));
    }
  }

  function price(v) { return v === null || v === undefined ? "unknown" : "$" + (v < 1 ? v.toFixed(3) : v.toFixed(2)); }
  function tokens(v) { return v === null || v === undefined ? "?" : v >= 1000 ? Math.round(v / 1000) + "k" : String(v); }

  function renderDeployment(d) {
    var label = d.health === "healthy" ? "healthy" : d.health === "cooling_down" ? "cooling down until " + when(d.cooldown_until)
      : d.health === "no_credentials" ? "no credentials" + (d.missing_variables.length ? " (not set: " + d.missing_variables.join(", ") + ")" : "")
      : "unhealthy";
    return el("li", { "data-testid": "deployment", "data-name": d.name, "data-health": d.health, "data-cooldown-until": d.cooldown_until || "" },
      el("code", { text: d.name }), " ", el("span", { "class": "badge " + d.health, text: label }));
  }

  function renderModels(m) {
    var box = clear(document.querySelector("#view-models .section-body"));
    box.appendChild(el("p", { "data-testid": "models-note" }, m.note.replace(/`/g, "") + " Failures are counted since " + when(m.day_start) +
      " (UTC midnight)" + (m.truncated ? ", stopped early: too many" : "") + "; calls in total are not recorded yet."));
    var head = el("tr", {});
    ["Group", "Aliases", "Deployments", "Price in / out (per 1M tokens)", "Context (in / out)", "Calls today", "Failures today"]
      .forEach(function (h) { head.appendChild(el("th", { scope: "col", text: h })); });
    var body = el("tbody", {});
    m.groups.forEach(function (g) {
      var deps = el("ul", { "class": "deployments" });
      g.deployments.forEach(function (d) { deps.appendChild(renderDeployment(d)); });
      var cats = Object.keys(g.failures_by_category).map(function (c) { return c + " " + g.failures_by_category[c]; }).join(", ");
      body.appendChild(el("tr", { "data-testid": "model-row", "data-group": g.name },
        el("th", { scope: "row" }, el("span", { "data-testid": "model-name", text: g.name }),
          g.name === m.default_model ? el("span", { "class": "badge default", text: "default" }) : null,
          g.credentials_present ? null : el("span", { "class": "badge unhealthy", text: "no credentials" })),
        el("td", { "data-testid": "model-aliases", text: g.aliases.join(", ") || "none" }),
        el("td", {}, deps),
        el("td", { "data-testid": "model-prices", text: price(g.input_cost_per_mtok) + " / " + price(g.output_cost_per_mtok) }),
        el("td", { "data-testid": "model-context", text: tokens(g.max_input_tokens) + " / " + tokens(g.max_output_tokens) }),
        el("td", { "data-testid": "model-calls", text: g.calls_today === null ? "not recorded" : String(g.calls_today) }),
        el("td", {}, el("strong", { "data-testid": "model-failures", text: String(g.failures_today) }), cats ? " (" + cats + ")" : "")));
    });
    var region = el("div", { "class": "scroll", tabindex: "0", role: "region", "aria-label": "Model groups" },
      el("table", { id: "models-table" }, el("caption", { text: "Model groups, their deployments' health, prices and today's failures" }),
        el("thead", {}, head), body));
    box.appendChild(region);
    if (m.other_failures_today) {
      box.appendChild(el("p", { "data-testid": "models-other", text: m.other_failures_today + " failure(s) today from models outside these groups." }));
    }
  }

  // Spend: the ledger's figures as the usage report gives them (USD, whole micro-dollars).
  // Every micro-dollar the ledger holds is shown (up to 6 decimals, at least 2): the rows add up to the total.
  function dollars(v) {
    if (v === null || v === undefined) return "?";
    var t = v.toFixed(6).replace(/0+$/, "");
    return "$" + (t.length - t.indexOf(".") < 3 ? v.toFixed(2) : t);
  }

  function spendTable(span, label, by, title, usdBy, callsBy, s) {
    var head = el("tr", {}, el("th", { scope: "col", text: title }), el("th", { scope: "col", text: "USD" }), el("th", { scope: "col", text: "Calls" }));
    var body = el("tbody", {});
    var names = Object.keys(usdBy);
    if (!names.length) body.appendChild(el("tr", {}, el("td", { colspan: 3, "data-testid": "spend-empty", "class": "not-configured", text: "Nothing spent." })));
    names.forEach(function (n) {
      var calls = (callsBy || {})[n];
      body.appendChild(el("tr", { "data-testid": "spend-row", "data-span": span, "data-by": by, "data-name": n },
        el("th", { scope: "row", "data-testid": "spend-name", text: n }),
        el("td", { "class": "num", "data-testid": "spend-usd", text: dollars(usdBy[n]) }),
        el("td", { "class": "num", "data-testid": "spend-calls", text: calls === undefined ? "?" : String(calls) })));
    });
    var foot = el("tfoot", {}, el("tr", { "data-testid": "spend-total", "data-span": span, "data-by": by },
      el("th", { scope: "row", text: "Total" }), el("td", { "class": "num", "data-testid": "spend-total-usd", text: dollars(s.cost_usd) }),
      el("td", { "class": "num", "data-testid": "spend-total-calls", text: String(s.calls) })));
    return el("div", { "class": "scroll", tabindex: "0", role: "region", "aria-label": label + " by " + title.toLowerCase() },
      el("table", { "data-testid": "spend-table-" + span + "-" + by }, el("caption", { text: label + ", by " + title.toLowerCase() }), el("thead", {}, head), body, foot));
  }

  function budgetBar(b) {
    var W = 300, H = 14, lim = b.limit_usd > 0 ? b.limit_usd : 1;
    var sw = Math.min(W, W * b.spent_usd / lim), rw = Math.min(W - sw, W * b.reserved_usd / lim);
    var figures = dollars(b.spent_usd) + " spent, " + dollars(b.reserved_usd) + " reserved, " + dollars(b.left_usd) + " left of " + dollars(b.limit_usd);
    return el("svg:svg", { "class": "budget-bar", viewBox: "0 0 " + W + " " + H, width: W, height: H, role: "img", "aria-label": figures },
      el("svg:rect", { x: 0, y: 0, width: W, height: H, "class": "left" }),
      el("svg:rect", { x: 0, y: 0, width: sw, height: H, "class": "spent", "data-testid": "budget-bar-spent" }),
      el("svg:rect", { x: sw, y: 0, width: rw, height: H, "class": "reserved" }));
  }

  function renderBudget(b) {
    var who = b.scope === "all" ? "Overall" : (b.scope === "caller" ? "Caller " : "Model group ") + b.name;
    var full = b.left_usd <= 0;
    return el("li", { "data-testid": "budget", "data-budget": b.budget },
      el("strong", { "data-testid": "budget-name", text: who + ", " + (b.period === "day" ? "daily" : "monthly") }),
      full ? el("span", { "class": "badge unhealthy", text: "used up" }) : null,
      el("div", {}, budgetBar(b)),
      el("div", { "class": "figures" },
        el("span", { "class": "key spent", "aria-hidden": "true" }), el("span", { "data-testid": "budget-spent", text: dollars(b.spent_usd) }), " spent, ",
        el("span", { "class": "key reserved", "aria-hidden": "true" }), el("span", { "data-testid": "budget-reserved", text: dollars(b.reserved_usd) }), " reserved, ",
        el("span", { "class": "key left", "aria-hidden": "true" }), el("span", { "data-testid": "budget-left", text: dollars(b.left_usd) }), " left of ",
        el("span", { "data-testid": "budget-limit", text: dollars(b.limit_usd) }), "; resets ",
        el("time", { datetime: b.resets, "data-testid": "budget-resets", text: when(b.resets) })));
  }

  function renderSpend(s) {
    var box = clear(document.querySelector("#view-spend .section-body"));
    box.appendChild(el("p", { "data-testid": "spend-note", text: "As of " + when(s.as_of) + (s.caller ? "; only caller " + s.caller + "'s spend." : "; every caller's spend.") +
      " Days and months are UTC." }));
    [["today", "Today", s.today], ["month", "This month", s.month]].forEach(function (x) {
      var sp = x[2];
      box.appendChild(el("h3", { text: x[1] + ": " + dollars(sp.cost_usd) + " over " + sp.calls + " call" + (sp.calls === 1 ? "" : "s") +
        (sp.unpriced_calls ? " (" + sp.unpriced_calls + " without a known price)" : "") }));
      box.appendChild(el("div", { "class": "spend-pair" },
        spendTable(x[0], x[1], "model", "Model group", sp.by_model, sp.calls_by_model, sp),
        spendTable(x[0], x[1], "caller", "Caller", sp.by_caller, sp.calls_by_caller, sp)));
    });
    box.appendChild(el("h3", { text: "Budgets" }));
    if (!s.budgets.length) { box.appendChild(el("p", { "class": "not-configured", "data-testid": "budgets-none", text: "No budgets configured." })); return; }
    var list = el("ul", { "class": "budgets", "aria-label": "Budgets" });
    s.budgets.forEach(function (b) { list.appendChild(renderBudget(b)); });
    box.appendChild(list);
  }

  // -- interaction ---------------------------------------------------------------

  var tabs = ["failures", "spend", "models"];
  function select(name, focus) {
    shownTab = name;
    status(statuses[name][0], statuses[name][1], name);
    tabs.forEach(function (t) {
      var tab = document.getElementById("tab-" + t), on = t === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      document.getElementById("view-" + t).hidden = !on;
      if (on && focus) tab.focus();
    });
  }
  tabs.forEach(function (t, i) {
    var tab = document.getElementById("tab-" + t);
    tab.addEventListener("click", function () { select(t, false); });
    tab.addEventListener("keydown", function (e) {
      var step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (step) { e.preventDefault(); select(tabs[(i + step + tabs.length) % tabs.length], true); }
    });
  });
  document.getElementById("filters").addEventListener("submit", function (e) {
    e.preventDefault();
    var f = e.target.elements;
    query = { since: f.since.value, model: f.model.value, category: f.category.value, limit: query.limit };
    openedFirst = true;
    load();
  });

  // -- start ---------------------------------------------------------------------

  if (MODE === "web") {
    // The page's own URL may carry the first query (?since=week&category=auth&limit=5&id=...) and a tab (?tab=models).
    var given = new URLSearchParams(window.location.search);
    if (tabs.indexOf(given.get("tab")) >= 0) select(given.get("tab"), false);
    ["since", "model", "category", "limit"].forEach(function (k) { if (given.get(k)) query[k] = given.get(k); });
    if (given.get("id")) { openedFirst = true; openDump(given.get("id")); }
    load();
    return;
  }

  window.addEventListener("message", function (e) {
    if (e.source !== window.parent) return;
    var m = e.data;
    if (!m || m.jsonrpc !== "2.0") return;
    if (m.method === undefined && m.id !== undefined) { // a response to one of our requests
      var p = pending[m.id];
      if (!p) return;
      delete pending[m.id];
      if (m.error) p.reject(new Error(m.error.message || "host error")); else p.resolve(m.result);
    } else if (m.method === "ui/notifications/tool-result") {
      try { render(fromToolResult(m.params)); } catch (err) { status(err.message, true); }
    } else if (m.method === "ui/notifications/tool-input") {
      var a = (m.params && m.params.arguments) || {};
      query = { since: a.since || "day", model: a.model || "", category: a.category || "", limit: a.limit || "" };
    } else if (m.id !== undefined && m.method === "ui/resource-teardown") {
      post({ jsonrpc: "2.0", id: m.id, result: {} });
    } else if (m.id !== undefined) {
      post({ jsonrpc: "2.0", id: m.id, error: { code: -32601, message: "method not found: " + m.method } });
    }
  });
  status("Waiting for the host…");
  request("ui/initialize", {
    protocolVersion: APPS_PROTOCOL,
    appInfo: { name: "hive-mcp-dashboard", version: "1" },
    appCapabilities: {}
  }).then(function () {
    notify("ui/notifications/initialized", {});
    status("Waiting for the dashboard tool's result…");
  }).catch(function (e) { status("host refused ui/initialize: " + e.message, true); });
})();
