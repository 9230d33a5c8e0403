"""The API docs page: one self-contained HTML page (inline CSS and vanilla JavaScript, nothing
fetched from anywhere but this service) that loads `openapi.json` beside it and renders the
operations, their parameters, bodies and answers, and the schemas. Works offline."""

from __future__ import annotations

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Whispr messaging API</title>
<style>
  :root { --fg: #1d2330; --muted: #5b6475; --line: #dde2ea; --bg: #f6f8fb; --card: #fff; --accent: #3a5bd9; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
         background: var(--bg); }
  header { padding: 20px 28px; background: #1d2330; color: #fff; }
  header h1 { margin: 0 0 4px; font-size: 22px; }
  header .sub { color: #b8c0d0; font-size: 13px; }
  header code { background: #2e3645; color: #fff; }
  .layout { display: flex; align-items: flex-start; }
  nav { position: sticky; top: 0; width: 340px; flex: none; max-height: 100vh; overflow: auto; padding: 16px;
        border-right: 1px solid var(--line); background: #fff; }
  nav input { width: 100%; padding: 6px 8px; border: 1px solid var(--line); border-radius: 6px; font: inherit; }
  nav h3 { margin: 16px 0 4px; font-size: 12px; text-transform: uppercase; letter-spacing: .05em;
           color: var(--muted); }
  nav a { display: block; padding: 2px 0; color: var(--fg); text-decoration: none; font-size: 13px;
          white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  nav a:hover { color: var(--accent); }
  main { flex: 1; min-width: 0; padding: 20px 28px 80px; }
  section.tag > h2 { margin: 28px 0 10px; font-size: 19px; border-bottom: 1px solid var(--line);
                     padding-bottom: 4px; }
  .op { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin: 12px 0;
        padding: 12px 16px; }
  .op h4 { margin: 0; font-size: 15px; display: flex; gap: 10px; align-items: center; flex-wrap: wrap; }
  .op .path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-weight: 600; }
  .op .summary { color: var(--muted); font-weight: 400; }
  .m { display: inline-block; min-width: 64px; text-align: center; border-radius: 4px; color: #fff; font-size: 12px;
       font-weight: 700; padding: 2px 6px; font-family: ui-monospace, Menlo, Consolas, monospace; }
  .m.get { background: #2f7d4f; } .m.post { background: #3a5bd9; } .m.put { background: #b7791f; }
  .m.patch { background: #8a4fbf; } .m.delete { background: #c0392b; }
  .badge { font-size: 11px; border: 1px solid var(--line); border-radius: 10px; padding: 0 8px; color: var(--muted); }
  .op h5 { margin: 12px 0 4px; font-size: 13px; text-transform: uppercase; letter-spacing: .04em;
           color: var(--muted); }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-top: 1px solid var(--line); }
  th { color: var(--muted); font-weight: 600; }
  code, .type { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
  code { background: #eef1f6; padding: 0 4px; border-radius: 3px; }
  .type { color: #7a3e9d; }
  .req { color: #c0392b; font-size: 11px; margin-left: 4px; }
  .status { font-weight: 700; font-family: ui-monospace, Menlo, Consolas, monospace; }
  .status.ok { color: #2f7d4f; } .status.err { color: #c0392b; }
  details > summary { cursor: pointer; }
  .schema { margin: 4px 0 4px 12px; border-left: 2px solid var(--line); padding-left: 10px; }
  .desc p { margin: 6px 0; } .desc ul { margin: 6px 0; padding-left: 22px; }
  .muted { color: var(--muted); }
  a.ref { color: var(--accent); }
  #error { color: #c0392b; padding: 20px 28px; }
  [hidden] { display: none !important; }
</style>
</head>
<body>
<header>
  <h1 id="title">Whispr messaging API</h1>
  <div class="sub" id="subtitle">Loading the OpenAPI document&hellip;</div>
</header>
<div id="error" hidden></div>
<div class="layout">
  <nav>
    <input id="filter" type="search" placeholder="Filter: path, summary, method" aria-label="Filter operations">
    <div id="toc"></div>
  </nav>
  <main id="main"></main>
</div>
<script>
"use strict";
(function () {
  var doc = null;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "cls") node.className = attrs[k];
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  // Inline markdown: `code` and **bold**, as DOM nodes (never innerHTML).
  function inline(text) {
    var out = [], re = /(`[^`]+`|\\*\\*[^*]+\\*\\*)/g, last = 0, m;
    while ((m = re.exec(text)) !== null) {
      if (m.index > last) out.push(text.slice(last, m.index));
      var t = m[0];
      out.push(t[0] === "`" ? el("code", {text: t.slice(1, -1)}) : el("strong", {text: t.slice(2, -2)}));
      last = m.index + t.length;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  // Block markdown: paragraphs and "- " lists (continuation lines are indented).
  function markdown(text) {
    var box = el("div", {cls: "desc"}), list = null, para = null;
    (text || "").split("\\n").forEach(function (line) {
      if (/^\\s*$/.test(line)) { list = null; para = null; return; }
      if (/^- /.test(line)) {
        if (!list) { list = el("ul"); box.appendChild(list); }
        para = el("li", {}, inline(line.slice(2))); list.appendChild(para); return;
      }
      if (para && /^\\s/.test(line)) { inline(" " + line.trim()).forEach(function (n) { para.appendChild(
        typeof n === "string" ? document.createTextNode(n) : n); }); return; }
      if (para && !list) { inline(" " + line.trim()).forEach(function (n) { para.appendChild(
        typeof n === "string" ? document.createTextNode(n) : n); }); return; }
      list = null; para = el("p", {}, inline(line)); box.appendChild(para);
    });
    return box;
  }

  function refName(ref) { return ref.split("/").pop(); }
  function resolve(obj) {
    var guard = 0;
    while (obj && obj.$ref && guard++ < 20) {
      var parts = obj.$ref.replace(/^#\\//, "").split("/"), cur = doc;
      parts.forEach(function (p) { cur = cur ? cur[p] : undefined; });
      obj = cur;
    }
    return obj || {};
  }

  function typeLabel(s) {
    if (!s || Object.keys(s).length === 0) return "any";
    if (s.$ref) return refName(s.$ref);
    if (s.anyOf || s.oneOf) return (s.anyOf || s.oneOf).map(typeLabel).join(" | ");
    if (s.const !== undefined) return JSON.stringify(s.const);
    if (s["enum"]) return s["enum"].map(function (v) { return JSON.stringify(v); }).join(" | ");
    var t = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
    if (t === "array") return "array of " + typeLabel(s.items || {});
    if (t === "object" && s.additionalProperties && typeof s.additionalProperties === "object" && !s.properties)
      return "map of " + typeLabel(s.additionalProperties);
    if (t === "object" && !s.properties) return "object";
    var label = t || "object";
    if (s.format) label += " (" + s.format + ")";
    return label;
  }

  function constraints(s) {
    var bits = [];
    ["minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern"].forEach(function (k) {
      if (s[k] !== undefined) bits.push(k + " " + (s[k] >= 9.2e18 ? "2^63-1" : s[k]));
    });
    if (s["default"] !== undefined) bits.push("default " + JSON.stringify(s["default"]));
    return bits.length ? " \\u2014 " + bits.join(", ") : "";
  }

  // Small objects ({data, meta} envelopes, nested bodies) are shown inline, on one line.
  function inlineable(s) { return !!(s && !s.$ref && s.properties && Object.keys(s.properties).length <= 3); }

  function typeNode(s) {
    if (s && s.$ref) {
      return el("a", {cls: "ref type", href: "#schema-" + refName(s.$ref), text: refName(s.$ref)});
    }
    if (s && s.type === "array" && s.items && s.items.$ref) {
      return el("span", {cls: "type"}, ["array of ", typeNode(s.items)]);
    }
    if (inlineable(s)) {
      var fields = [], names = Object.keys(s.properties);
      names.forEach(function (n, i) {
        fields.push((i ? ", " : "{") + n + ": ");
        fields.push(typeNode(s.properties[n]));
      });
      fields.push("}");
      return el("span", {cls: "type"}, fields);
    }
    if (s && (s.anyOf || s.oneOf)) {
      var parts = [], alts = s.anyOf || s.oneOf;
      alts.forEach(function (a, i) { if (i) parts.push(" | "); parts.push(typeNode(a)); });
      return el("span", {cls: "type"}, parts);
    }
    return el("span", {cls: "type", text: typeLabel(s)});
  }

  // A schema: its type, and for inline objects a table of properties (nested ones expandable).
  function schemaView(s, depth) {
    depth = depth || 0;
    s = s || {};
    var box = el("div", {cls: "schema"});
    var inlineObj = !s.$ref && !inlineable(s) &&
      (s.properties || (s.type === "array" && s.items && s.items.properties));
    box.appendChild(el("div", {}, [typeNode(s), el("span", {cls: "muted", text: constraints(s)})]));
    if (s.description && depth > 0) box.appendChild(el("div", {cls: "muted", text: s.description}));
    var obj = s.type === "array" && s.items && s.items.properties ? s.items : s;
    if (inlineObj && obj.properties) box.appendChild(propertiesTable(obj, depth));
    (s.anyOf || s.oneOf || []).forEach(function (alt) {
      if (!alt.$ref && alt.properties && !inlineable(alt) && depth < 6) box.appendChild(schemaView(alt, depth + 1));
    });
    return box;
  }

  function propertiesTable(s, depth) {
    var required = s.required || [];
    var rows = Object.keys(s.properties).map(function (name) {
      var p = s.properties[name];
      var nested = !p.$ref && (p.properties || (p.anyOf || []).some(function (a) { return a.properties; }));
      var descCell = el("td", {}, [p.description ? p.description : ""]);
      var typeCell = el("td", {}, [typeNode(p), el("span", {cls: "muted", text: constraints(p)})]);
      if (nested && depth < 6) {
        typeCell.appendChild(el("details", {}, [el("summary", {text: "fields"}), schemaView(p, depth + 1)]));
      }
      return el("tr", {}, [
        el("td", {}, [el("code", {text: name}),
                      required.indexOf(name) >= 0 ? el("span", {cls: "req", text: "required"}) : null]),
        typeCell, descCell]);
    });
    var extra = s.additionalProperties === false ? "No other keys." : "";
    var table = el("table", {}, [el("tr", {}, [el("th", {text: "field"}), el("th", {text: "type"}),
                                               el("th", {text: "description"})])].concat(rows));
    return el("div", {}, [table, extra ? el("div", {cls: "muted", text: extra}) : null]);
  }

  function opId(method, path) { return "op-" + method + "-" + path.replace(/[^A-Za-z0-9]+/g, "-"); }

  function operationView(path, method, op, pathItem) {
    var servers = (pathItem.servers || doc.servers || []).map(function (s) { return s.url; });
    var isPublic = Array.isArray(op.security) && op.security.length === 0;
    var card = el("div", {cls: "op", id: opId(method, path)});
    card.setAttribute("data-search", (method + " " + path + " " + (op.summary || "") + " " +
                                      (op.operationId || "")).toLowerCase());
    card.appendChild(el("h4", {}, [
      el("span", {cls: "m " + method, text: method.toUpperCase()}),
      el("span", {cls: "path", text: path}),
      el("span", {cls: "summary", text: op.summary || ""}),
      el("span", {cls: "badge", text: isPublic ? "no token" : "bearer token"}),
      el("span", {cls: "badge", text: op.operationId || ""})
    ]));
    card.appendChild(el("div", {cls: "muted", text: "at " + servers.map(function (u) {
      return u.replace(/\\/$/, "") + path; }).join("  or  ")}));
    if (op.description) card.appendChild(markdown(op.description));

    var params = (op.parameters || []).concat(pathItem.parameters || []).map(resolve);
    if (params.length) {
      card.appendChild(el("h5", {text: "Parameters"}));
      card.appendChild(el("table", {}, [el("tr", {}, [el("th", {text: "name"}), el("th", {text: "in"}),
        el("th", {text: "type"}), el("th", {text: "description"})])].concat(params.map(function (p) {
        return el("tr", {}, [
          el("td", {}, [el("code", {text: p.name}), p.required ? el("span", {cls: "req", text: "required"}) : null]),
          el("td", {text: p["in"]}),
          el("td", {}, [typeNode(p.schema || {}), el("span", {cls: "muted", text: constraints(p.schema || {})})]),
          el("td", {text: p.description || ""})]);
      }))));
    }
    if (op.requestBody) {
      var body = resolve(op.requestBody);
      card.appendChild(el("h5", {text: "Request body" + (body.required ? " (required)" : " (optional)")}));
      if (body.description) card.appendChild(el("div", {cls: "muted", text: body.description}));
      Object.keys(body.content || {}).forEach(function (mt) {
        card.appendChild(el("div", {}, [el("code", {text: mt})]));
        card.appendChild(schemaView(body.content[mt].schema, 0));
      });
    }
    card.appendChild(el("h5", {text: "Responses"}));
    var rows = Object.keys(op.responses || {}).map(function (status) {
      var r = resolve(op.responses[status]);
      var cell = el("td", {}, [r.description || ""]);
      Object.keys(r.content || {}).forEach(function (mt) {
        var sch = r.content[mt].schema;
        cell.appendChild(el("div", {}, [el("code", {text: mt}), " ", sch ? typeNode(sch) : ""]));
        if (sch && !sch.$ref && !inlineable(sch) && (sch.properties || sch.anyOf)) {
          cell.appendChild(el("details", {}, [el("summary", {text: "schema"}), schemaView(sch, 1)]));
        }
      });
      Object.keys(r.headers || {}).forEach(function (h) {
        cell.appendChild(el("div", {cls: "muted"}, ["header ", el("code", {text: h}), ": " +
                                                      (r.headers[h].description || "")]));
      });
      var ok = status.charAt(0) === "2";
      return el("tr", {}, [el("td", {}, [el("span", {cls: "status " + (ok ? "ok" : "err"), text: status})]), cell]);
    });
    card.appendChild(el("table", {}, rows));
    return card;
  }

  function render() {
    document.title = doc.info.title;
    document.getElementById("title").textContent = doc.info.title + " " + doc.info.version;
    var sub = document.getElementById("subtitle");
    sub.textContent = "OpenAPI " + doc.openapi + " \\u00b7 servers: ";
    (doc.servers || []).forEach(function (s, i) { if (i) sub.appendChild(document.createTextNode(", "));
      sub.appendChild(el("code", {text: s.url})); });
    sub.appendChild(document.createTextNode(" \\u00b7 "));
    sub.appendChild(el("a", {href: jsonUrl, text: "openapi.json", style: "color:#fff"}));

    var main = document.getElementById("main"), toc = document.getElementById("toc");
    main.appendChild(el("section", {}, [markdown(doc.info.description || "")]));

    var byTag = {}, order = [];
    Object.keys(doc.paths || {}).forEach(function (path) {
      var item = doc.paths[path];
      ["get", "put", "post", "patch", "delete", "head", "options"].forEach(function (method) {
        var op = item[method];
        if (!op) return;
        var tag = (op.tags && op.tags[0]) || "other";
        if (!byTag[tag]) { byTag[tag] = []; order.push(tag); }
        byTag[tag].push([path, method, op, item]);
      });
    });
    order.forEach(function (tag) {
      var section = el("section", {cls: "tag", id: "tag-" + tag}, [el("h2", {text: tag})]);
      toc.appendChild(el("h3", {}, [el("a", {href: "#tag-" + tag, text: tag})]));
      byTag[tag].forEach(function (entry) {
        section.appendChild(operationView(entry[0], entry[1], entry[2], entry[3]));
        var link = el("a", {href: "#" + opId(entry[1], entry[0])},
                      [el("span", {cls: "m " + entry[1], text: entry[1].toUpperCase()}), " " + entry[0]]);
        link.setAttribute("data-search", (entry[1] + " " + entry[0] + " " + (entry[2].summary || "") + " " +
                                          (entry[2].operationId || "")).toLowerCase());
        toc.appendChild(link);
      });
      main.appendChild(section);
    });

    var schemas = (doc.components && doc.components.schemas) || {};
    var ss = el("section", {cls: "tag", id: "schemas"}, [el("h2", {text: "Schemas"})]);
    toc.appendChild(el("h3", {}, [el("a", {href: "#schemas", text: "schemas"})]));
    Object.keys(schemas).forEach(function (name) {
      var s = schemas[name];
      var card = el("div", {cls: "op", id: "schema-" + name}, [el("h4", {}, [el("span", {cls: "path", text: name})])]);
      card.setAttribute("data-search", ("schema " + name).toLowerCase());
      if (s.description) card.appendChild(markdown(s.description));
      if (s.properties) card.appendChild(propertiesTable(s, 0));
      else card.appendChild(schemaView(s, 0));
      ss.appendChild(card);
      var link = el("a", {href: "#schema-" + name, text: name});
      link.setAttribute("data-search", ("schema " + name).toLowerCase());
      toc.appendChild(link);
    });
    main.appendChild(ss);
    if (location.hash) { var target = document.getElementById(location.hash.slice(1));
      if (target) target.scrollIntoView(); }
  }

  function applyFilter() {
    var q = document.getElementById("filter").value.trim().toLowerCase();
    document.querySelectorAll("[data-search]").forEach(function (node) {
      node.hidden = q !== "" && node.getAttribute("data-search").indexOf(q) < 0;
    });
    document.querySelectorAll("section.tag").forEach(function (section) {  // no empty headings
      section.hidden = q !== "" && !section.querySelector("[data-search]:not([hidden])");
    });
  }

  // openapi.json sits beside this page: /messaging/api/docs -> /messaging/api/openapi.json
  var jsonUrl = location.pathname.replace(/\\/docs\\/?$/, "/openapi.json");
  if (jsonUrl === location.pathname) jsonUrl = "openapi.json";
  document.getElementById("filter").addEventListener("input", applyFilter);
  fetch(jsonUrl, {headers: {"Accept": "application/json"}})
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(function (d) {
      doc = d;
      render();
      var q = new URLSearchParams(location.search).get("q");  // docs?q=messages: the page, filtered
      if (q) { document.getElementById("filter").value = q; applyFilter(); }
    })
    .catch(function (e) {
      var box = document.getElementById("error");
      box.hidden = false;
      box.textContent = "Could not load " + jsonUrl + ": " + e.message;
      document.getElementById("subtitle").textContent = "";
    });
})();
</script>
</body>
</html>
"""
