// Tanda's live map (crates/web/src/map.rs says what each page's map shows, and why plain SVG).
// An element with [data-map="<fragment>"] becomes a map of Seoul's 25 districts with the points
// the fragment answers (JSON), drawn at once, again whenever the page's notification stream
// delivers an event or one of its forms goes through, and every few seconds while the answer
// says something is moving. Every marker carries data-key, data-kind, data-status, data-lat and
// data-lng; the element carries data-points (the keys drawn) once it has drawn.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  // All of Seoul, and the least a view that follows points shows (about 2 km across).
  var SEOUL = [[37.413, 126.764], [37.715, 127.184]];
  var LEAST = 0.02;
  // East-west degrees are shorter than north-south ones this far north.
  var SQUEEZE = Math.cos(37.55 * Math.PI / 180);
  var PAD = 24;
  var outline = null;

  function districts() {
    if (!outline) {
      outline = fetch("/assets/seoul-districts.geojson").then(function (r) {
        if (!r.ok) throw new Error("the district outline answered " + r.status);
        return r.json();
      });
    }
    return outline;
  }

  function add(parent, name, attrs, text) {
    var el = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text !== undefined) el.textContent = text;
    parent.appendChild(el);
    return el;
  }

  function titled(el, text) {
    if (text) add(el, "title", {}, text);
    return el;
  }

  // The box [[south, west], [north, east]] around `points`, at least LEAST across.
  function around(points) {
    var s = 90, w = 180, n = -90, e = -180;
    points.forEach(function (p) {
      s = Math.min(s, p.lat); n = Math.max(n, p.lat);
      w = Math.min(w, p.lng); e = Math.max(e, p.lng);
    });
    var lat = (s + n) / 2, lng = (w + e) / 2;
    var half = Math.max(n - s, (e - w) * SQUEEZE, LEAST) / 2 * 1.25;
    return [[lat - half, lng - half / SQUEEZE], [lat + half, lng + half / SQUEEZE]];
  }

  // Screen coordinates for the box `view` fitted into width × height.
  function projection(view, width, height) {
    var x0 = view[0][1] * SQUEEZE, x1 = view[1][1] * SQUEEZE;
    var scale = Math.min((width - 2 * PAD) / (x1 - x0), (height - 2 * PAD) / (view[1][0] - view[0][0]));
    var cx = (x0 + x1) / 2, cy = (view[0][0] + view[1][0]) / 2;
    function at(lat, lng) {
      return [width / 2 + (lng * SQUEEZE - cx) * scale, height / 2 - (lat - cy) * scale];
    }
    at.scale = scale;
    return at;
  }

  function ringPath(ring, at) {
    return ring.map(function (c, i) {
      var p = at(c[1], c[0]);
      return (i ? "L" : "M") + p[0].toFixed(1) + " " + p[1].toFixed(1);
    }).join("") + "Z";
  }

  // Where a district's name goes: the centre of its outer ring's area.
  function centre(ring) {
    var a = 0, x = 0, y = 0;
    for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
      var f = ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
      a += f; x += (ring[j][0] + ring[i][0]) * f; y += (ring[j][1] + ring[i][1]) * f;
    }
    return a ? [y / (3 * a), x / (3 * a)] : [ring[0][1], ring[0][0]];
  }

  function start(el) {
    var data = null, geo = null, timer = null, soon = null, busy = false, again = false;
    var svg = add(el, "svg", { "class": "map-canvas", role: "img", "aria-label": el.getAttribute("aria-label") || "" });
    el.removeAttribute("aria-label");
    var korean = (document.documentElement.lang || "").indexOf("ko") === 0;

    function draw() {
      var width = el.clientWidth, height = el.clientHeight;
      if (!width || !height) return;
      svg.setAttribute("viewBox", "0 0 " + width + " " + height);
      while (svg.firstChild) svg.removeChild(svg.firstChild);
      var points = data ? data.points : [];
      var follow = data && data.fit === "points" && points.length;
      var at = projection(follow ? around(points) : SEOUL, width, height);

      var land = add(svg, "g", { "class": "map-districts" });
      var names = add(svg, "g", { "class": "map-district-names" });
      var roomy = at.scale * SQUEEZE > (korean ? 1500 : 2400);
      (geo ? geo.features : []).forEach(function (f) {
        var name = korean ? f.properties.name : f.properties.nameEn;
        var rings = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
        var d = rings.map(function (poly) {
          return poly.map(function (ring) { return ringPath(ring, at); }).join("");
        }).join("");
        titled(add(land, "path", { "class": "map-district", d: d }), name);
        if (roomy) {
          var c = at.apply(null, centre(rings[0][0]));
          add(names, "text", { x: c[0].toFixed(1), y: c[1].toFixed(1) }, korean ? name : name.replace(/-gu$/, ""));
        }
      });

      var lines = add(svg, "g", { "class": "map-lines" });
      (data ? data.lines : []).forEach(function (l) {
        var a = at(l.from[0], l.from[1]), b = at(l.to[0], l.to[1]);
        add(lines, "line", { "class": "map-line " + l.kind, x1: a[0], y1: a[1], x2: b[0], y2: b[1] });
      });

      // Rides' ends under the taxis; labels over everything when there are few enough to read,
      // the taxis' first, each moved up or down until it overlaps none placed before it.
      var marks = add(svg, "g", { "class": "map-points" });
      var labels = add(svg, "g", { "class": "map-labels" });
      var taxis = points.filter(function (p) { return p.kind === "taxi"; });
      var ends = points.filter(function (p) { return p.kind !== "taxi"; });
      ends.concat(taxis).forEach(function (p) {
        var c = at(p.lat, p.lng);
        var status = (p.status || "").toLowerCase();
        titled(add(marks, "circle", {
          "class": "map-point " + p.kind + (status ? " " + status : ""),
          cx: c[0].toFixed(1), cy: c[1].toFixed(1), r: p.kind === "taxi" ? 8 : 7,
          "data-key": p.key, "data-kind": p.kind, "data-status": p.status || "",
          "data-lat": p.lat, "data-lng": p.lng
        }), p.label);
      });
      if (points.length <= 6) {
        var placed = [];
        taxis.concat(ends).forEach(function (p) {
          if (!p.label) return;
          var c = at(p.lat, p.lng), left = c[0] > width * 0.62;
          var text = add(labels, "text", {
            x: (c[0] + (left ? -12 : 12)).toFixed(1), "text-anchor": left ? "end" : "start",
            "class": "map-label " + p.kind
          }, p.label);
          var found = [0, -14, 14, -28, 28].some(function (dy) {
            text.setAttribute("y", (c[1] + 4 + dy).toFixed(1));
            var b = text.getBBox();
            var clear = placed.every(function (o) {
              return b.x + b.width < o.x || o.x + o.width < b.x || b.y + b.height < o.y || o.y + o.height < b.y;
            });
            if (clear) placed.push(b);
            return clear;
          });
          if (!found) text.setAttribute("y", (c[1] + 4).toFixed(1));
        });
      }
      el.setAttribute("data-points", points.map(function (p) { return p.key; }).join(" "));
    }

    function later(seconds) {
      clearTimeout(timer);
      timer = seconds ? setTimeout(refresh, seconds * 1000) : null;
    }

    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      later(0);
      fetch(el.getAttribute("data-map"), { headers: { Accept: "application/json" }, cache: "no-store" })
        .then(function (r) {
          if (r.status === 401) return null; // signed out: the page itself says so
          if (!r.ok) throw new Error("the map answered " + r.status);
          return r.json().then(function (answer) {
            data = answer;
            draw();
            el.setAttribute("data-state", "ready");
            later(answer.refreshSeconds);
          });
        })
        .catch(function () { later(10); })
        .then(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }

    // Several parts of a page hear the same event: one refresh for them all.
    function nudge() {
      clearTimeout(soon);
      soon = setTimeout(refresh, 150);
    }

    document.addEventListener("htmx:sseMessage", nudge);
    document.addEventListener("htmx:afterRequest", function (e) {
      var verb = e.detail && e.detail.requestConfig && e.detail.requestConfig.verb;
      if (e.detail.successful && verb && verb !== "get") nudge();
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) nudge();
    });
    if (window.ResizeObserver) new ResizeObserver(draw).observe(el);
    districts().then(function (g) { geo = g; draw(); }).catch(function () {});
    refresh();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-map]").forEach(start);
  });
})();
