/* factorywatch offline map viewer (geo/export/templates/viewer.js). Written for factorywatch;
 * no libraries, no network: it reads window.FW_VIEW (viewer-data.js beside it) and draws the
 * footprints of one date over that date's scene preview in an SVG, with a date slider, a
 * scale bar, a north arrow, a legend and the imagery credit. Wheel zooms, drag pans.
 * Licence: the same as factorywatch. */
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  function el(tag, attrs, parent) {
    var e = document.createElementNS(NS, tag);
    for (var k in attrs) { e.setAttribute(k, attrs[k]); }
    if (parent) { parent.appendChild(e); }
    return e;
  }
  function niceLength(m) {
    var k = Math.pow(10, Math.floor(Math.log10(m))), best = k;
    [1, 2, 5].forEach(function (f) { if (f * k <= m) { best = f * k; } });
    return best;
  }
  function label(m) { return m >= 1000 ? (m / 1000) + " km" : m + " m"; }

  function init(root, data) {
    var ext = data.extent, w = ext[1] - ext[0], h = ext[3] - ext[2];
    var view = [ext[0], -ext[3], w, h];
    var box = document.createElement("div");
    box.className = "fwv-map";
    root.appendChild(box);
    var svg = el("svg", {"class": "fwv-svg", "role": "img",
                         "aria-label": "footprints over the scene of the selected date"}, box);
    var img = el("image", {"preserveAspectRatio": "none", "x": ext[0], "y": -ext[3],
                           "width": w, "height": h}, svg);
    var layer = el("g", {"class": "fwv-footprints"}, svg);
    var north = document.createElement("div");
    north.className = "fwv-north";
    north.innerHTML = "<span style='display:inline-block;transform:rotate(" +
      (data.north_deg || 0) + "deg)'>&#8593;</span><br>N";
    box.appendChild(north);
    var bar = document.createElement("div");
    bar.className = "scalebar fwv-scalebar";
    box.appendChild(bar);
    var credit = document.createElement("div");
    credit.className = "attribution fwv-credit";
    box.appendChild(credit);
    var note = document.createElement("div");
    note.className = "fwv-mask";
    box.appendChild(note);

    var ctl = document.createElement("div");
    ctl.className = "fwv-controls";
    var slider = document.createElement("input");
    slider.type = "range"; slider.min = 0; slider.max = data.dates.length - 1; slider.step = 1;
    slider.value = data.dates.length - 1;
    slider.setAttribute("aria-label", "date");
    var dateLabel = document.createElement("b");
    var play = document.createElement("button");
    play.type = "button"; play.textContent = "play";
    ctl.appendChild(document.createTextNode("Date: "));
    ctl.appendChild(slider); ctl.appendChild(dateLabel); ctl.appendChild(play);
    root.insertBefore(ctl, box);

    var legend = document.createElement("ul");
    legend.className = "legend fwv-legend";
    data.legend.forEach(function (it) {
      var li = document.createElement("li");
      li.innerHTML = "<span class='swatch' style='border-color:" + it[0] + "'></span>";
      li.appendChild(document.createTextNode(it[1]));
      legend.appendChild(li);
    });
    root.appendChild(legend);

    function setView() {
      svg.setAttribute("viewBox", view.join(" "));
      var px = svg.getBoundingClientRect().width || 800;
      var m = niceLength(view[2] * 0.2);
      bar.style.width = Math.max(10, m / view[2] * px) + "px";
      bar.textContent = label(m);
    }
    function show(i) {
      var d = data.dates[i];
      dateLabel.textContent = " " + d + " ";
      if (data.scenes[d]) { img.setAttribute("href", data.scenes[d]); img.style.display = ""; }
      else { img.style.display = "none"; }
      credit.textContent = data.credits[d] || "";
      var mf = data.masked[d] || 0;
      note.textContent = mf > 0 ? Math.round(mf * 100) + "% of this scene is masked by cloud " +
        "or nodata (tinted)" : "";
      note.style.display = mf > 0 ? "" : "none";
      while (layer.firstChild) { layer.removeChild(layer.firstChild); }
      data.features.forEach(function (f) {
        if (f.date !== d) { return; }
        var dstr = f.rings.map(function (r) {
          return "M" + r.map(function (p) { return p[0] + "," + (-p[1]); }).join("L") + "Z";
        }).join("");
        var path = el("path", {"d": dstr, "fill": f.colour, "fill-opacity": "0.15",
                               "stroke": f.colour, "stroke-width": "2",
                               "vector-effect": "non-scaling-stroke",
                               "fill-rule": "evenodd"}, layer);
        el("title", {}, path).textContent = f.tip;
        var t = el("text", {"x": f.label[0], "y": -f.label[1], "class": "fwv-label"}, layer);
        t.textContent = f.id;
      });
    }
    slider.addEventListener("input", function () { show(+slider.value); });
    var timer = null;
    play.addEventListener("click", function () {
      if (timer) { clearInterval(timer); timer = null; play.textContent = "play"; return; }
      play.textContent = "stop";
      timer = setInterval(function () {
        slider.value = (+slider.value + 1) % data.dates.length; show(+slider.value);
      }, 1200);
    });
    svg.addEventListener("wheel", function (ev) {
      ev.preventDefault();
      var r = svg.getBoundingClientRect(), s = ev.deltaY > 0 ? 1.25 : 0.8;
      var fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
      var nw = view[2] * s, nh = view[3] * s;
      view = [view[0] + (view[2] - nw) * fx, view[1] + (view[3] - nh) * fy, nw, nh];
      setView();
    }, {passive: false});
    var drag = null;
    svg.addEventListener("mousedown", function (ev) { drag = [ev.clientX, ev.clientY]; });
    window.addEventListener("mouseup", function () { drag = null; });
    window.addEventListener("mousemove", function (ev) {
      if (!drag) { return; }
      var r = svg.getBoundingClientRect();
      view[0] -= (ev.clientX - drag[0]) / r.width * view[2];
      view[1] -= (ev.clientY - drag[1]) / r.height * view[3];
      drag = [ev.clientX, ev.clientY];
      setView();
    });
    window.addEventListener("resize", setView);
    setView();
    show(+slider.value);
  }

  function start() {
    var data = window.FW_VIEW;
    var roots = document.querySelectorAll("[data-fw-viewer]");
    for (var i = 0; i < roots.length; i++) {
      if (!data || !data.dates || !data.dates.length) {
        roots[i].textContent = "No map data (viewer-data.js missing or empty).";
      } else {
        init(roots[i], data);
      }
    }
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else { start(); }
})();
