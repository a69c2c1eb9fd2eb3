/**
 * The HTML report's inline script (plain ES2017, no dependencies). The page is
 * complete without it; it adds:
 *  - hover tips and click-to-pin details, cloned from the <template>s the
 *    renderer wrote (so all text was escaped once, server-side, and the
 *    script only ever moves nodes or sets textContent, never innerHTML);
 *  - zoom: drag across the timeline, or "Zoom to this socket/exchange";
 *    every positioned element carries data-a/data-b (seconds from the first
 *    packet) and is laid out again; tick marks follow the same rule as
 *    ticks() in ../html.ts;
 *  - the "only sockets with a failure" filter, and findings that jump to
 *    their socket.
 * Its SHA-256 goes into the page's Content-Security-Policy, so keep it a
 * constant string.
 */
export const SCRIPT = String.raw`(function () {
  'use strict';
  var wf = document.querySelector('.wf');
  var tip = document.getElementById('tip');
  var details = document.getElementById('details');
  var detailsBody = document.getElementById('details-body');
  var selected = null;
  var tipFor = null;
  var drag = null;
  var suppressClick = false;
  var full = null;
  var view = null;

  function tplOf(el) {
    return document.getElementById('t-' + el.getAttribute('data-tip'));
  }

  // ---- tips and details
  function placeTip(x, y) {
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var left = x + 14, top = y + 16;
    if (left + w > window.innerWidth - 8) left = Math.max(8, x - w - 14);
    if (top + h > window.innerHeight - 8) top = Math.max(8, y - h - 16);
    tip.style.left = left + 'px';
    tip.style.top = top + 'px';
  }
  function showTip(el, x, y) {
    var t = tplOf(el);
    if (!t) return;
    tipFor = el;
    tip.replaceChildren(t.content.cloneNode(true));
    tip.querySelectorAll('.d-actions').forEach(function (a) { a.remove(); });
    tip.style.display = 'block';
    placeTip(x, y);
  }
  function hideTip() {
    tipFor = null;
    tip.style.display = 'none';
  }
  function pin(el) {
    var t = tplOf(el);
    if (!t) return;
    if (selected) selected.classList.remove('sel');
    selected = el;
    el.classList.add('sel');
    detailsBody.replaceChildren(t.content.cloneNode(true));
    details.style.display = 'block';
    hideTip();
  }
  function unpin() {
    if (selected) selected.classList.remove('sel');
    selected = null;
    details.style.display = 'none';
  }

  document.addEventListener('mouseover', function (ev) {
    if (drag) return;
    var el = ev.target.closest ? ev.target.closest('[data-tip]') : null;
    if (!el || details.contains(el)) { hideTip(); return; }
    if (el !== tipFor) showTip(el, ev.clientX, ev.clientY);
  });
  document.addEventListener('mousemove', function (ev) {
    if (tipFor) placeTip(ev.clientX, ev.clientY);
  });
  document.addEventListener('focusin', function (ev) {
    var el = ev.target.closest ? ev.target.closest('[data-tip]') : null;
    if (el) { var r = el.getBoundingClientRect(); showTip(el, r.right, r.top); }
  });
  // Only the tip that focus opened: a hidden button losing focus must not close a tip the mouse opened.
  document.addEventListener('focusout', function (ev) {
    if (tipFor && tipFor === ev.target) hideTip();
  });
  document.addEventListener('keydown', function (ev) {
    if (ev.key === 'Escape') { unpin(); hideTip(); }
    if (ev.key === 'Enter' && ev.target.hasAttribute && ev.target.hasAttribute('data-tip')) pin(ev.target);
  });

  function goToSocket(conn, ex) {
    var row = document.getElementById('sock-' + conn);
    if (!row) return;
    if (wf && wf.classList.contains('only-failing') && !row.classList.contains('fail')) {
      wf.classList.remove('only-failing');
      document.getElementById('only-failing').checked = false;
    }
    row.scrollIntoView({ block: 'center' });
    row.classList.remove('flash');
    void row.offsetWidth;
    row.classList.add('flash');
    var target = ex ? row.querySelector('.bar[data-tip="c' + conn + 'e' + ex + '"]') : null;
    pin(target || row.querySelector('.lbl'));
  }

  document.addEventListener('click', function (ev) {
    if (suppressClick) { suppressClick = false; return; }
    var t = ev.target;
    if (!t.closest) return;
    var z = t.closest('[data-zoom]');
    if (z) {
      var ab = z.getAttribute('data-zoom').split(',').map(Number);
      var pad = Math.max((ab[1] - ab[0]) * 0.08, 0.0005);
      zoomTo(ab[0] - pad, ab[1] + pad);
      return;
    }
    if (t.closest('#details .close')) { unpin(); return; }
    if (details.contains(t)) return;
    var f = t.closest('tr[data-conn]');
    if (f) { goToSocket(f.getAttribute('data-conn'), f.getAttribute('data-ex')); return; }
    var el = t.closest('[data-tip]');
    if (el) pin(el);
  });

  if (!wf) return;

  // ---- zoom and layout
  full = [Number(wf.getAttribute('data-v0')), Number(wf.getAttribute('data-v1'))];
  view = full.slice();
  var ticksEl = wf.querySelector('.wf-axis .ticks');
  var gridEl = wf.querySelector('.grid');
  var body = wf.querySelector('.wf-body');
  var brush = wf.querySelector('.brush');
  var reset = document.getElementById('zoom-reset');
  var viewLabel = document.getElementById('wf-view');
  var originText = viewLabel ? viewLabel.textContent : '';

  function tickStep(range, n) {
    var raw = range / Math.max(1, n);
    if (raw < 60) {
      var p = Math.pow(10, Math.floor(Math.log10(raw)));
      var ms = [1, 2, 5, 10];
      for (var i = 0; i < ms.length; i++) if (ms[i] * p >= raw) return ms[i] * p;
    }
    var ss = [60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
    for (var j = 0; j < ss.length; j++) if (ss[j] >= raw) return ss[j];
    return Math.ceil(raw / 86400) * 86400;
  }
  function pad2(n) { return (n < 10 ? '0' : '') + n; }
  function tickLabel(v, step) {
    if (Math.abs(v) < step / 1e6) return '0';
    if (step < 60) return '+' + v.toFixed(Math.max(0, Math.ceil(-Math.log10(step)))) + 's';
    var m = Math.round(v / 60);
    return m < 60 ? '+' + m + 'm' : '+' + Math.floor(m / 60) + 'h' + pad2(m % 60) + 'm';
  }
  function fmtRel(v) {
    var a = Math.abs(v);
    return (v < 0 ? '-' : '+') + (a < 1 ? (a * 1000).toFixed(a < 0.01 ? 3 : 1) + 'ms' : a.toFixed(3) + 's');
  }
  function pct(t) { return ((t - view[0]) / (view[1] - view[0])) * 100; }

  function drawTicks() {
    var step = tickStep(view[1] - view[0], 8);
    var tf = document.createDocumentFragment(), gf = document.createDocumentFragment();
    for (var i = Math.ceil(Math.max(0, view[0]) / step), n = 0; i * step <= view[1] && n < 100; i++, n++) {
      var at = Number((i * step).toFixed(9));
      var tk = document.createElement('div');
      tk.className = 'tick';
      tk.style.left = pct(at) + '%';
      tk.textContent = tickLabel(at, step);
      tf.appendChild(tk);
      var gl = document.createElement('div');
      gl.className = 'gl';
      gl.style.left = pct(at) + '%';
      gf.appendChild(gl);
    }
    ticksEl.replaceChildren(tf);
    gridEl.replaceChildren(gf);
  }

  function layout() {
    var tb = trackBox();
    var px = tb ? tb.width / 100 : 0;
    var els = body.querySelectorAll('[data-a]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i];
      var l = pct(Number(el.getAttribute('data-a')));
      if (el.hasAttribute('data-b')) {
        var r = pct(Number(el.getAttribute('data-b')));
        // A label whose start scrolled off the left edge stays readable at the edge.
        if (l < 0 && el.classList.contains('xl')) {
          if (pct(Number(el.getAttribute('data-c'))) < 0) r = -2;
          else l = 0;
        }
        // Labels too narrow to say anything ("G…") are left to the tips.
        var narrow = px > 0 && el.classList.contains('xl') && (r - l) * px < 40;
        el.style.display = r < -1 || l > 101 || narrow ? 'none' : '';
        el.style.left = l + '%';
        el.style.width = Math.max(0, r - l) + '%';
      } else {
        el.style.display = l < -2 || l > 102 ? 'none' : '';
        el.style.left = l + '%';
      }
    }
    drawTicks();
    var zoomed = view[0] !== full[0] || view[1] !== full[1];
    reset.disabled = !zoomed;
    if (viewLabel) viewLabel.textContent = zoomed ? 'zoomed: ' + fmtRel(view[0]) + ' to ' + fmtRel(view[1]) : originText;
  }

  function zoomTo(a, b) {
    if (!(b > a)) return;
    if (b - a < 0.00005) { var mid = (a + b) / 2; a = mid - 0.000025; b = mid + 0.000025; }
    view = [Math.max(a, full[0]), Math.min(b, full[1])];
    if (!(view[1] > view[0])) view = full.slice();
    layout();
  }
  reset.addEventListener('click', function () { view = full.slice(); layout(); });

  document.getElementById('only-failing').addEventListener('change', function (ev) {
    wf.classList.toggle('only-failing', ev.target.checked);
  });

  function trackBox() {
    var tr = body.querySelector('.track');
    return tr ? tr.getBoundingClientRect() : null;
  }
  body.addEventListener('mousedown', function (ev) {
    if (ev.button !== 0) return;
    var tb = trackBox();
    if (!tb || ev.clientX < tb.left || ev.clientX > tb.right) return;
    drag = { x0: ev.clientX, x1: ev.clientX, tb: tb, moved: false };
    ev.preventDefault();
  });
  window.addEventListener('mousemove', function (ev) {
    if (!drag) return;
    drag.x1 = Math.min(Math.max(ev.clientX, drag.tb.left), drag.tb.right);
    if (Math.abs(drag.x1 - drag.x0) > 4) drag.moved = true;
    if (!drag.moved) return;
    hideTip();
    var bb = body.getBoundingClientRect();
    brush.style.display = 'block';
    brush.style.left = Math.min(drag.x0, drag.x1) - bb.left + 'px';
    brush.style.width = Math.abs(drag.x1 - drag.x0) + 'px';
  });
  window.addEventListener('mouseup', function () {
    if (!drag) return;
    var d = drag;
    drag = null;
    brush.style.display = 'none';
    if (!d.moved) return;
    suppressClick = true;
    setTimeout(function () { suppressClick = false; }, 0);
    var f0 = (Math.min(d.x0, d.x1) - d.tb.left) / d.tb.width;
    var f1 = (Math.max(d.x0, d.x1) - d.tb.left) / d.tb.width;
    var w = view[1] - view[0];
    zoomTo(view[0] + f0 * w, view[0] + f1 * w);
  });

  layout();
  wf.setAttribute('data-ready', '1');
})();
`;
