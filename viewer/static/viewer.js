// Molar's dental image viewer: full-depth frames from DICOMweb through a
// lookup table onto a canvas. No build step, no dependencies; strict CSP
// (this file is the only script; configuration comes from data-config).
'use strict';
(function () {
  const app = document.getElementById('viewer-app');
  if (!app) return;
  const cfg = JSON.parse(app.dataset.config);
  const csrf = app.dataset.csrf;
  const T = (k, ...args) => {
    let s = (cfg.t && cfg.t[k]) || k;
    for (const a of args) s = s.replace(/%[sd]/, String(a));
    return s;
  };

  // ---------- small helpers ----------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids.flat()) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function status(msg) { document.getElementById('status').textContent = msg || ''; }
  // drawable keeps the annotations that have points to draw (a state
  // saved by another client may hold others; one must not stop the image).
  function drawable(list) {
    if (!Array.isArray(list)) return [];
    return list.filter((a) => a && typeof a.type === 'string' && Array.isArray(a.pts) && a.pts.length > 0 &&
      a.pts.every((p) => Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1])));
  }
  async function api(method, url, body) {
    const r = await fetch(url, {
      method, credentials: 'same-origin',
      headers: Object.assign({ 'Accept': 'application/json' }, body !== undefined ? { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf } : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    let data = null;
    try { data = await r.json(); } catch (e) { /* not JSON */ }
    return { status: r.status, ok: r.ok, data };
  }
  const frameURL = (im, frames) => `${cfg.dicomweb}/studies/${im.study}/series/${im.series}/instances/${im.sop}/frames/${frames}`;
  const instanceURL = (im) => `${cfg.dicomweb}/wado?requestType=WADO&studyUID=${encodeURIComponent(im.study)}&seriesUID=${encodeURIComponent(im.series)}&objectUID=${encodeURIComponent(im.sop)}&contentType=application%2Fdicom${im.transferSyntax ? '&transferSyntax=' + encodeURIComponent(im.transferSyntax) : ''}`;

  // ---------- frames: multipart/related → typed arrays ----------
  function indexOf(hay, needle, from) {
    const n0 = needle[0], nl = needle.length;
    outer: for (let i = from; i <= hay.length - nl; i++) {
      if (hay[i] !== n0) continue;
      for (let j = 1; j < nl; j++) if (hay[i + j] !== needle[j]) continue outer;
      return i;
    }
    return -1;
  }
  function parseMultipart(buf, contentType) {
    const m = /boundary="?([^";]+)"?/i.exec(contentType || '');
    const bytes = new Uint8Array(buf);
    if (!m) return [bytes];
    const enc = new TextEncoder();
    const delim = enc.encode('--' + m[1]);
    const crlf2 = enc.encode('\r\n\r\n');
    const parts = [];
    let pos = indexOf(bytes, delim, 0);
    while (pos >= 0) {
      const hstart = pos + delim.length;
      if (bytes[hstart] === 45 && bytes[hstart + 1] === 45) break; // closing "--"
      const hend = indexOf(bytes, crlf2, hstart);
      if (hend < 0) break;
      const head = new TextDecoder().decode(bytes.subarray(hstart, hend));
      const lm = /content-length:\s*(\d+)/i.exec(head);
      const body = hend + 4;
      let end;
      if (lm) end = body + parseInt(lm[1], 10);
      else { end = indexOf(bytes, delim, body) - 2; }
      parts.push(bytes.slice(body, end));
      pos = indexOf(bytes, delim, end);
    }
    return parts;
  }
  async function fetchFrames(im, numbers) {
    const r = await fetch(frameURL(im, numbers.join(',')), {
      credentials: 'same-origin', headers: { 'Accept': 'multipart/related; type="application/octet-stream"' },
    });
    if (!r.ok) throw new Error('frames ' + r.status);
    return parseMultipart(await r.arrayBuffer(), r.headers.get('Content-Type'));
  }
  // samples turns a frame's bytes into stored values (shifted down from
  // High Bit, masked to Bits Stored, sign-extended) and finds their range
  // and histogram.
  function samples(im, bytes) {
    const n = im.rows * im.cols * im.samples;
    const sh = im.shift || 0;
    let data;
    if (im.bitsAllocated === 16) {
      const u = new Uint16Array(bytes.buffer, bytes.byteOffset, Math.min(n, bytes.byteLength >> 1));
      const bits = im.bitsStored || 16;
      if (im.pixelRep === 1) {
        data = new Int16Array(u.length);
        const s = 32 - bits;
        for (let i = 0; i < u.length; i++) data[i] = ((u[i] >>> sh) << s) >> s;
      } else {
        data = bits < 16 || sh ? u.map((v) => (v >>> sh) & ((1 << bits) - 1)) : u;
      }
    } else {
      data = new Uint8Array(bytes.buffer, bytes.byteOffset, Math.min(n, bytes.byteLength));
      const bits = im.bitsStored || 8;
      if (im.samples === 1 && (bits < 8 || sh)) data = data.map((v) => (v >>> sh) & ((1 << bits) - 1));
    }
    let lo = Infinity, hi = -Infinity;
    if (im.samples === 1) {
      for (let i = 0; i < data.length; i++) { const v = data[i]; if (v < lo) lo = v; if (v > hi) hi = v; }
    } else { lo = 0; hi = 255; }
    const range = hi - lo + 1;
    const hist = new Uint32Array(range);
    if (im.samples === 1) for (let i = 0; i < data.length; i++) hist[data[i] - lo]++;
    return { data, min: lo, max: hi, hist };
  }
  // percentile of a histogram (fraction p of the pixels, skipping the
  // lowest value: collimator edges and air).
  function percentile(f, p) {
    const h = f.hist;
    let total = 0;
    for (let i = 1; i < h.length; i++) total += h[i];
    if (total === 0) return f.min;
    const want = p * total;
    let acc = 0;
    for (let i = 1; i < h.length; i++) { acc += h[i]; if (acc >= want) return f.min + i; }
    return f.max;
  }

  // ---------- lookup table ----------
  // buildLUT maps every stored value in [f.min, f.max] to an opaque gray
  // RGBA pixel (one uint32): modality LUT (rescale), VOI linear window
  // (PS3.3 C.11.2.1.2), MONOCHROME1 and user inversion, optional contrast
  // enhancement (blend with histogram equalisation inside the window).
  function buildLUT(im, f, view, lut) {
    const len = f.max - f.min + 1;
    if (!lut || lut.length !== len) lut = new Uint32Array(len);
    const slope = im.slope || 1, icpt = im.intercept || 0;
    const c = view.wc, w = Math.max(1, view.ww);
    const lo = c - 0.5 - (w - 1) / 2, hi = c - 0.5 + (w - 1) / 2;
    const inv = (im.photometric === 'MONOCHROME1' || !!im.presInverse) !== !!view.invert;
    let cdf = null;
    if (view.enhance) {
      cdf = new Float32Array(len);
      let acc = 0, tot = 0;
      for (let i = 0; i < len; i++) {
        const m = (f.min + i) * slope + icpt;
        if (m > lo && m <= hi && i > 0) tot += f.hist[i];
      }
      for (let i = 0; i < len; i++) {
        const m = (f.min + i) * slope + icpt;
        if (m > lo && m <= hi && i > 0) acc += f.hist[i];
        cdf[i] = tot ? acc / tot : 0;
      }
    }
    for (let i = 0; i < len; i++) {
      const m = (f.min + i) * slope + icpt;
      let y;
      if (m <= lo) y = 0;
      else if (m > hi) y = 1;
      else y = (m - (c - 0.5)) / (w - 1) + 0.5;
      if (cdf) y = 0.4 * y + 0.6 * (m <= lo ? 0 : m > hi ? 1 : cdf[i]);
      y = Math.max(0, Math.min(1, y));
      let g = Math.round(y * 255);
      if (inv) g = 255 - g;
      lut[i] = 0xff000000 | (g << 16) | (g << 8) | g;
    }
    return lut;
  }
  // autoWindow: the 1st to 99.5th percentile of the pixels (dental
  // panoramics often carry no usable window, DOMAIN.md).
  function autoWindow(im, f, lo = 0.01, hi = 0.995) {
    const a = percentile(f, lo), b = percentile(f, hi);
    const s = im.slope || 1, i0 = im.intercept || 0;
    return { wc: ((a + b) / 2) * s + i0, ww: Math.max(1, (b - a) * s) };
  }
  function presets(im) {
    const out = [{ id: 'auto', name: T('preset.auto') }];
    if (im.windowWidth) out.push({ id: 'header', name: T('preset.header') });
    if (im.kind === 'cbct') {
      out.push({ id: 'bone', name: T('preset.bone'), wc: 700, ww: 2500 }, { id: 'enamel', name: T('preset.enamel'), wc: 1800, ww: 2400 }, { id: 'soft', name: T('preset.soft'), wc: 40, ww: 400 });
    } else if (im.samples === 1) {
      out.push({ id: 'bone', name: T('preset.bone'), p: [0.05, 0.8] }, { id: 'enamel', name: T('preset.enamel'), p: [0.55, 0.999] });
    }
    return out;
  }

  // ---------- geometry ----------
  function spacingOf(im, state) {
    if (state && state.calibration && state.calibration.mmPerPx > 0) return { row: state.calibration.mmPerPx, col: state.calibration.mmPerPx, source: 'calibrated' };
    if (im.pixelSpacing && im.pixelSpacing.length === 2) return { row: im.pixelSpacing[0], col: im.pixelSpacing[1], source: im.spacingSource };
    return null;
  }
  function lengthMM(sp, a, b) {
    const dx = b[0] - a[0], dy = b[1] - a[1];
    if (!sp) return { v: Math.hypot(dx, dy), unit: 'px' };
    return { v: Math.hypot(dx * sp.col, dy * sp.row), unit: 'mm' };
  }
  function angleDeg(sp, a, v, b) {
    const sx = sp ? sp.col : 1, sy = sp ? sp.row : 1;
    const a1 = Math.atan2((a[1] - v[1]) * sy, (a[0] - v[0]) * sx), a2 = Math.atan2((b[1] - v[1]) * sy, (b[0] - v[0]) * sx);
    let d = Math.abs(a1 - a2) * 180 / Math.PI;
    if (d > 180) d = 360 - d;
    return d;
  }
  const fmt1 = (x) => x.toFixed(1);
  function describe(vp, a) {
    const sp = spacingOf(vp.im, vp.state);
    if (a.type === 'length' || a.type === 'calibration') {
      const L = lengthMM(sp, a.pts[0], a.pts[1]);
      let s = fmt1(L.v) + ' ' + L.unit;
      if (L.unit === 'px') s += ' (' + T('uncal') + ')';
      else if (sp.source === 'imager') s += ' (' + T('detector') + ')';
      else if (sp.source === 'calibrated') s += ' (' + T('calibrated') + ')';
      return s;
    }
    if (a.type === 'angle') return fmt1(angleDeg(sp, a.pts[0], a.pts[1], a.pts[2])) + '°';
    if (a.type === 'text') return a.text;
    if (a.type === 'arrow') return '→ ' + (a.text || '');
    return '';
  }

  // ---------- a viewport: one image (or volume) on one canvas ----------
  class Viewport {
    constructor(host, appRef, passive) {
      this.app = appRef;
      this.passive = !!passive; // mounts: no pointer tools, the slot drags
      this.host = host;
      this.canvas = el('canvas', { class: 'vw-canvas', tabindex: '0' });
      this.info = el('div', { class: 'vw-info' });
      this.slider = el('input', { type: 'range', class: 'vw-slice', min: '0', max: '0', value: '0', hidden: true, 'aria-label': 'slice' });
      host.append(this.canvas, this.info, this.slider);
      this.ctx = this.canvas.getContext('2d');
      this.off = document.createElement('canvas');
      this.offCtx = this.off.getContext('2d');
      this.item = null; this.im = null; this.frames = []; this.slice = 0;
      this.view = null; this.state = null; this.version = 0; this.draft = null;
      this.lut = null; this.lutKey = ''; this.pixKey = '';
      this.drawn = 0;
      this.slider.addEventListener('input', () => this.setSlice(+this.slider.value));
      this.bindPointer();
      new ResizeObserver(() => this.resize()).observe(host);
    }
    resize() {
      const r = this.host.getBoundingClientRect();
      const dpr = window.devicePixelRatio || 1;
      const w = Math.max(1, Math.round(r.width * dpr)), h = Math.max(1, Math.round(r.height * dpr));
      if (this.canvas.width !== w || this.canvas.height !== h) {
        this.canvas.width = w; this.canvas.height = h;
        if (this.view && this.view.fitted) this.fit();
        this.draw();
      }
    }
    // load shows an item: frames and the saved state load in parallel;
    // the first frame draws as soon as both are here, the rest follow.
    async load(item) {
      this.item = item; this.im = item.images[0];
      this.frames = []; this.slice = 0; this.lut = null; this.lutKey = ''; this.pixKey = '';
      this.host.dataset.sop = this.im.sop;
      this.host.classList.add('loading');
      const count = item.volume ? item.images.length : this.im.frames;
      this.slider.hidden = count <= 1; this.slider.max = String(count - 1); this.slider.value = '0';
      const first = item.volume || this.im.frames > 1 ? Math.floor(count / 2) : 0;
      const [parts, st] = await Promise.all([
        item.volume ? fetchFrames(item.images[first], [1]) : fetchFrames(this.im, [first + 1]),
        api('GET', `${cfg.api}/images/${encodeURIComponent(this.im.sop)}/state`),
      ]);
      if (this.item !== item) return;
      this.frames[first] = samples(item.volume ? item.images[first] : this.im, parts[0]);
      this.slice = first; this.slider.value = String(first);
      this.version = st.data ? st.data.version : 0;
      this.state = Object.assign({ annotations: [] }, st.data && st.data.state ? st.data.state : {});
      this.state.annotations = drawable(this.state.annotations);
      this.view = this.initialView();
      this.host.classList.remove('loading');
      this.fit(true);
      this.app.changed(this);
      if (count > 1) this.loadRest(item, count);
    }
    async loadRest(item, count) {
      // Progressive: the remaining slices in batches, nearest the shown one first.
      const order = [];
      for (let d = 1; d < count; d++) { for (const k of [this.slice + d, this.slice - d]) if (k >= 0 && k < count) order.push(k); }
      const batch = 8;
      for (let i = 0; i < order.length && this.item === item; i += batch) {
        const ks = order.slice(i, i + batch);
        try {
          if (item.volume) {
            await Promise.all(ks.map(async (k) => { const p = await fetchFrames(item.images[k], [1]); this.frames[k] = samples(item.images[k], p[0]); }));
          } else {
            const p = await fetchFrames(this.im, ks.map((k) => k + 1));
            ks.forEach((k, j) => { this.frames[k] = samples(this.im, p[j]); });
          }
        } catch (e) { status(String(e)); return; }
        this.info.dataset.loaded = String(this.frames.filter(Boolean).length);
        this.updateInfo();
        if (ks.includes(this.slice)) this.draw();
      }
    }
    frame() { return this.frames[this.slice] || this.frames.find(Boolean); }
    initialView() {
      const s = this.state, im = this.im, f = this.frame();
      let w;
      if (s.window) w = { wc: s.window.c, ww: s.window.w };
      else if (im.windowWidth && im.kind !== 'pano') w = { wc: im.windowCenter, ww: im.windowWidth };
      else w = autoWindow(im, f);
      return {
        wc: w.wc, ww: w.ww, zoom: 1, px: 0, py: 0, fitted: true,
        rot: s.rot || 0, flipH: !!s.flipH, invert: !!s.invert, sharpen: !!s.sharpen, enhance: !!s.enhance,
        extraRot: 0, extraFlip: false,
      };
    }
    setSlice(k) {
      const n = this.item.volume ? this.item.images.length : this.im.frames;
      k = Math.max(0, Math.min(n - 1, k));
      if (k === this.slice) return;
      this.slice = k; this.slider.value = String(k); this.pixKey = '';
      this.draw();
    }
    // Geometry: image pixel (x, y) → canvas pixel through zoom, pan,
    // rotation (90° steps) and flip about the image centre.
    matrix() {
      const v = this.view, im = this.im, dpr = window.devicePixelRatio || 1;
      const m = new DOMMatrix();
      m.translateSelf(this.canvas.width / 2 + v.px * dpr, this.canvas.height / 2 + v.py * dpr);
      m.scaleSelf(v.zoom * dpr, v.zoom * dpr);
      m.rotateSelf(((v.rot + v.extraRot) % 360));
      if (v.flipH !== v.extraFlip) m.scaleSelf(-1, 1);
      m.translateSelf(-im.cols / 2, -im.rows / 2);
      return m;
    }
    // toImage maps a page point to image pixels through the canvas as it
    // is shown (its box may differ from its buffer until the next resize).
    toImage(clientX, clientY) {
      const r = this.canvas.getBoundingClientRect();
      const sx = this.canvas.width / Math.max(1, r.width), sy = this.canvas.height / Math.max(1, r.height);
      const p = this.matrix().inverse().transformPoint(new DOMPoint((clientX - r.left) * sx, (clientY - r.top) * sy));
      return [p.x, p.y];
    }
    // imageToClient is for tests and tools: where an image pixel is on the page.
    imageToClient(x, y) {
      const r = this.canvas.getBoundingClientRect();
      const sx = r.width / Math.max(1, this.canvas.width), sy = r.height / Math.max(1, this.canvas.height);
      const p = this.matrix().transformPoint(new DOMPoint(x, y));
      return { x: r.left + p.x * sx, y: r.top + p.y * sy };
    }
    fit(initial) {
      if (!this.im || !this.view) return;
      const v = this.view, dpr = window.devicePixelRatio || 1;
      const rot = ((v.rot + v.extraRot) % 180) !== 0;
      const iw = rot ? this.im.rows : this.im.cols, ih = rot ? this.im.cols : this.im.rows;
      v.zoom = Math.min(this.canvas.width / dpr / iw, this.canvas.height / dpr / ih) * 0.96;
      v.px = 0; v.py = 0; v.fitted = true;
      if (!initial) this.app.linked(this);
      this.draw();
    }
    // pixels maps the current frame through the LUT into the offscreen canvas.
    pixels() {
      const f = this.frame(), im = this.item.volume ? this.item.images[this.slice] || this.im : this.im, v = this.view;
      if (!f) return false;
      const lutKey = [v.wc, v.ww, v.invert, v.enhance, this.slice, f.min, f.max].join('|');
      const pixKey = lutKey + '|' + v.sharpen;
      if (pixKey === this.pixKey) return true;
      if (this.off.width !== im.cols || this.off.height !== im.rows) { this.off.width = im.cols; this.off.height = im.rows; this.imgData = null; }
      if (!this.imgData) this.imgData = this.offCtx.createImageData(im.cols, im.rows);
      const out32 = new Uint32Array(this.imgData.data.buffer);
      const d = f.data;
      if (im.samples === 1) {
        if (lutKey !== this.lutKey) { this.lut = buildLUT(im, f, v, this.lut); this.lutKey = lutKey; }
        const lut = this.lut, base = f.min, n = out32.length;
        for (let i = 0; i < n; i++) out32[i] = lut[d[i] - base];
      } else {
        // RGB (8-bit): window per channel, planar or interleaved.
        const lo = v.wc - v.ww / 2, sc = 255 / Math.max(1, v.ww), n = im.rows * im.cols, inv = v.invert;
        const o = this.imgData.data;
        for (let i = 0; i < n; i++) {
          for (let c = 0; c < 3; c++) {
            const s = im.planar === 1 ? d[c * n + i] : d[i * 3 + c];
            let g = (s - lo) * sc; if (inv) g = 255 - g;
            o[i * 4 + c] = g;
          }
          o[i * 4 + 3] = 255;
        }
      }
      if (v.sharpen) sharpen(this.imgData);
      this.offCtx.putImageData(this.imgData, 0, 0);
      this.pixKey = pixKey;
      return true;
    }
    draw() {
      if (this.raf) return;
      this.raf = requestAnimationFrame(() => { this.raf = 0; this.drawNow(); });
    }
    drawNow() {
      const ctx = this.ctx;
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      ctx.fillStyle = '#000';
      ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
      if (!this.view || !this.pixels()) return;
      const m = this.matrix();
      ctx.setTransform(m);
      ctx.imageSmoothingEnabled = this.view.zoom < 2;
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(this.off, 0, 0);
      ctx.setTransform(1, 0, 0, 1, 0, 0);
      this.drawAnnotations(m);
      this.drawn++;
      if (this.drawn === 1) this.app.firstDrawn(this);
      this.updateInfo();
    }
    drawAnnotations(m) {
      const ctx = this.ctx, dpr = window.devicePixelRatio || 1;
      const P = (p) => m.transformPoint(new DOMPoint(p[0], p[1]));
      const list = this.state.annotations.filter((a) => a.slice === undefined || a.slice === this.slice);
      if (this.draft) list.push(this.draft);
      ctx.lineWidth = 2 * dpr;
      ctx.font = `${Math.round(14 * dpr)}px system-ui, sans-serif`;
      for (const a of list) {
        const col = a === this.draft ? '#ffd54a' : a.type === 'calibration' ? '#7fd3ff' : '#4cff7a';
        ctx.strokeStyle = col; ctx.fillStyle = col;
        const pts = a.pts.map(P);
        ctx.beginPath();
        if (a.type === 'length' || a.type === 'calibration' || a.type === 'arrow') {
          ctx.moveTo(pts[0].x, pts[0].y); ctx.lineTo(pts[1].x, pts[1].y);
          if (a.type === 'arrow') {
            const ang = Math.atan2(pts[1].y - pts[0].y, pts[1].x - pts[0].x), L = 12 * dpr;
            for (const s of [-0.45, 0.45]) { ctx.moveTo(pts[1].x, pts[1].y); ctx.lineTo(pts[1].x - L * Math.cos(ang + s), pts[1].y - L * Math.sin(ang + s)); }
          } else {
            for (const p of pts) { ctx.moveTo(p.x - 4 * dpr, p.y); ctx.lineTo(p.x + 4 * dpr, p.y); }
          }
        } else if (a.type === 'angle') {
          ctx.moveTo(pts[0].x, pts[0].y); ctx.lineTo(pts[1].x, pts[1].y);
          if (pts[2]) ctx.lineTo(pts[2].x, pts[2].y);
        }
        ctx.stroke();
        const label = a.type === 'angle' && a.pts.length < 3 ? '' : describe(this, a);
        if (label) {
          const at = a.type === 'text' ? pts[0] : pts[a.type === 'angle' ? 1 : pts.length - 1];
          ctx.lineWidth = 3 * dpr; ctx.strokeStyle = '#000';
          ctx.strokeText(label, at.x + 6 * dpr, at.y - 6 * dpr);
          ctx.fillText(label, at.x + 6 * dpr, at.y - 6 * dpr);
          ctx.lineWidth = 2 * dpr;
        }
      }
    }
    updateInfo() {
      if (!this.view) return;
      const v = this.view, n = this.item.volume ? this.item.images.length : this.im.frames;
      const lines = [`W ${Math.round(v.ww)}  L ${Math.round(v.wc)}`, `${Math.round(v.zoom * 100)} %`];
      if (n > 1) lines.push(T('slice', this.slice + 1, n));
      const sp = spacingOf(this.im, this.state);
      if (sp) lines.push(`${sp.col} mm/px` + (sp.source === 'imager' ? ' (' + T('detector') + ')' : ''));
      this.info.textContent = lines.join('\n');
    }
    // ---- state (saved beside the image) ----
    persist() {
      const v = this.view;
      Object.assign(this.state, { window: { c: v.wc, w: v.ww }, rot: v.rot, flipH: v.flipH, invert: v.invert, sharpen: v.sharpen, enhance: v.enhance });
      this.dirty = true;
      clearTimeout(this.saveTimer);
      this.saveTimer = setTimeout(() => this.save(), 400);
    }
    async save() {
      if (this.saving) { this.saveAgain = true; return; }
      this.saving = true;
      clearTimeout(this.saveTimer);
      status(T('saving'));
      const r = await api('PUT', `${cfg.api}/images/${encodeURIComponent(this.im.sop)}/state`, { version: this.version, state: this.state });
      this.saving = false;
      if (r.ok) { this.version = r.data.version; status(T('saved')); this.app.savedOnce = true; }
      else if (r.status === 409) {
        // Someone else saved meanwhile: show what is stored (their
        // annotations), so that the next change saves on top of it.
        status(T('conflict'));
        if (r.data && typeof r.data.version === 'number') {
          this.version = r.data.version;
          this.state = Object.assign({ annotations: [] }, r.data.state || {});
          this.state.annotations = drawable(this.state.annotations);
          this.saveAgain = false; this.dirty = false;
          this.draw(); this.app.changed(this);
        }
      }
      else status(T('savefailed'));
      if (this.saveAgain) { this.saveAgain = false; this.save(); } else if (r.ok) this.dirty = false;
    }
    // ---- pointer tools ----
    bindPointer() {
      const c = this.canvas;
      let drag = null;
      c.addEventListener('contextmenu', (e) => e.preventDefault());
      c.addEventListener('pointerdown', (e) => {
        if (!this.view || this.passive) return;
        this.app.activate(this);
        c.setPointerCapture(e.pointerId);
        const tool = e.button === 1 ? 'pan' : e.button === 2 ? 'zoom' : this.app.tool;
        const p = this.toImage(e.clientX, e.clientY);
        drag = { tool, x: e.clientX, y: e.clientY, wc: this.view.wc, ww: this.view.ww, zoom: this.view.zoom, px: this.view.px, py: this.view.py, p };
        if (tool === 'length' || tool === 'arrow' || tool === 'calibrate') {
          this.draft = { type: tool === 'calibrate' ? 'calibration' : tool, pts: [p, p.slice()] };
        } else if (tool === 'angle') {
          // Three clicks: first arm, vertex, second arm (or drag the first arm).
          const d = this.draft && this.draft.type === 'angle' ? this.draft : null;
          if (!d) this.draft = { type: 'angle', pts: [p, p.slice()] };
          else if (d.pts.length === 2) { d.pts[1] = p; d.pts.push(p.slice()); }
          else { d.pts[2] = p; this.draft = null; drag = null; this.addAnnotation(d); return; }
        } else if (tool === 'text') {
          drag = null;
          const text = window.prompt(T('textprompt'));
          if (text) this.addAnnotation({ type: 'text', pts: [p], text: text.slice(0, 200) });
        }
        this.draw();
      });
      c.addEventListener('pointermove', (e) => {
        if (!drag) {
          if (this.draft && this.draft.type === 'angle') { this.draft.pts[this.draft.pts.length - 1] = this.toImage(e.clientX, e.clientY); this.draw(); }
          return;
        }
        const dx = e.clientX - drag.x, dy = e.clientY - drag.y, v = this.view;
        switch (drag.tool) {
          case 'window': {
            const f = this.frame(), range = Math.max(1, (f.max - f.min) * (this.im.slope || 1));
            const k = range / 600;
            v.ww = Math.max(1, drag.ww + dx * k);
            v.wc = drag.wc + dy * k * 0.5;
            this.app.changed(this, true);
            break;
          }
          case 'zoom':
            v.zoom = Math.max(0.05, Math.min(40, drag.zoom * Math.exp(-dy / 150)));
            v.fitted = false; this.app.linked(this); break;
          case 'pan':
            v.px = drag.px + dx; v.py = drag.py + dy; v.fitted = false; this.app.linked(this); break;
          default:
            if (this.draft) { this.draft.pts[this.draft.pts.length - 1] = this.toImage(e.clientX, e.clientY); }
        }
        this.draw();
      });
      const up = (e) => {
        if (!drag) return;
        const tool = drag.tool;
        drag = null;
        if (tool === 'window') { this.persist(); return; }
        if (!this.draft) return;
        const d = this.draft;
        const p = this.toImage(e.clientX, e.clientY);
        if (d.type === 'angle') {
          if (d.pts.length === 2 && Math.hypot(p[0] - d.pts[0][0], p[1] - d.pts[0][1]) > 3) { d.pts[1] = p; d.pts.push(p.slice()); }
          this.draw(); return;
        }
        d.pts[1] = p;
        this.draft = null;
        if (Math.hypot(d.pts[1][0] - d.pts[0][0], d.pts[1][1] - d.pts[0][1]) < 2) { this.draw(); return; }
        if (d.type === 'calibration') {
          const mm = parseFloat(String(window.prompt(T('calprompt')) || '').replace(',', '.'));
          if (mm > 0) {
            const px = Math.hypot(d.pts[1][0] - d.pts[0][0], d.pts[1][1] - d.pts[0][1]);
            this.state.calibration = { mmPerPx: mm / px, mm, pts: d.pts };
            this.state.annotations = this.state.annotations.filter((a) => a.type !== 'calibration');
            this.addAnnotation(d);
          }
          this.draw(); return;
        }
        this.addAnnotation(d);
      };
      c.addEventListener('pointerup', up);
      c.addEventListener('pointercancel', () => { drag = null; });
      c.addEventListener('wheel', (e) => {
        if (!this.view || this.passive) return;
        e.preventDefault();
        const n = this.item.volume ? this.item.images.length : this.im.frames;
        if (n > 1 && !e.ctrlKey) { this.setSlice(this.slice + Math.sign(e.deltaY)); this.updateInfo(); return; }
        const v = this.view, f = Math.exp(-e.deltaY / 400);
        const r = this.canvas.getBoundingClientRect();
        const cx = e.clientX - r.left - r.width / 2, cy = e.clientY - r.top - r.height / 2;
        v.px = cx - (cx - v.px) * f; v.py = cy - (cy - v.py) * f; v.zoom *= f; v.fitted = false;
        this.app.linked(this); this.draw();
      }, { passive: false });
    }
    addAnnotation(a) {
      const n = this.item.volume ? this.item.images.length : this.im.frames;
      if (n > 1) a.slice = this.slice;
      a.id = Date.now().toString(36) + Math.random().toString(36).slice(2, 6);
      this.state.annotations.push(a);
      this.persist(); this.draw(); this.app.changed(this);
    }
    deleteAnnotation(id) {
      this.state.annotations = this.state.annotations.filter((a) => a.id !== id);
      if (!this.state.annotations.some((a) => a.type === 'calibration')) delete this.state.calibration;
      this.persist(); this.draw(); this.app.changed(this);
    }
    // ---- commands ----
    cmd(name, arg) {
      const v = this.view; if (!v) return;
      switch (name) {
        case 'rotate': v.rot = (v.rot + 90) % 360; this.fit(); break;
        case 'flip': v.flipH = !v.flipH; break;
        case 'invert': v.invert = !v.invert; break;
        case 'sharpen': v.sharpen = !v.sharpen; break;
        case 'enhance': v.enhance = !v.enhance; break;
        case 'fit': this.fit(); return;
        case 'auto': Object.assign(v, autoWindow(this.im, this.frame())); break;
        case 'preset': {
          const p = presets(this.im).find((x) => x.id === arg); if (!p) return;
          if (p.id === 'auto') Object.assign(v, autoWindow(this.im, this.frame()));
          else if (p.id === 'header') { v.wc = this.im.windowCenter; v.ww = this.im.windowWidth; }
          else if (p.p) Object.assign(v, autoWindow(this.im, this.frame(), p.p[0], p.p[1]));
          else { v.wc = p.wc; v.ww = p.ww; }
          break;
        }
        case 'reset':
          delete this.state.window;
          Object.assign(this.state, { rot: 0, flipH: false, invert: false, sharpen: false, enhance: false });
          this.view = Object.assign(this.initialView(), { extraRot: v.extraRot, extraFlip: v.extraFlip });
          this.pixKey = ''; this.fit(); break;
        case 'delete': { const a = this.state.annotations[this.state.annotations.length - 1]; if (a) this.deleteAnnotation(a.id); return; }
        default: return;
      }
      this.persist(); this.draw(); this.app.changed(this);
    }
    // render a PNG of the image as displayed (native resolution, rotation,
    // flip, window and marks).
    png() {
      const v = this.view, im = this.im, rot = ((v.rot + v.extraRot) % 180) !== 0;
      const c = document.createElement('canvas');
      c.width = rot ? im.rows : im.cols; c.height = rot ? im.cols : im.rows;
      const ctx = c.getContext('2d');
      const m = new DOMMatrix().translateSelf(c.width / 2, c.height / 2).rotateSelf(v.rot + v.extraRot);
      if (v.flipH !== v.extraFlip) m.scaleSelf(-1, 1);
      m.translateSelf(-im.cols / 2, -im.rows / 2);
      this.pixels();
      ctx.setTransform(m); ctx.drawImage(this.off, 0, 0); ctx.setTransform(1, 0, 0, 1, 0, 0);
      const saved = this.ctx; this.ctx = ctx; this.drawAnnotations(m); this.ctx = saved;
      return new Promise((res) => c.toBlob(res, 'image/png'));
    }
  }

  // 3×3 unsharp mask on an RGBA image (gray or colour).
  function sharpen(img) {
    const w = img.width, h = img.height, s = img.data, src = new Uint8ClampedArray(s);
    const k = 0.8;
    for (let y = 1; y < h - 1; y++) {
      for (let x = 1; x < w - 1; x++) {
        const i = (y * w + x) * 4;
        for (let c = 0; c < 3; c++) {
          const j = i + c;
          const lap = 4 * src[j] - src[j - 4] - src[j + 4] - src[j - w * 4] - src[j + w * 4];
          s[j] = src[j] + k * lap;
        }
      }
    }
  }

  // ---------- the application: toolbar, strip, stage, panel ----------
  const TOOLS = [['window', 'w'], ['zoom', 'z'], ['pan', 'p'], ['length', 'l'], ['angle', 'a'], ['text', 't'], ['arrow', 'k'], ['calibrate', 'c']];
  const COMMANDS = [['fit', 'f'], ['rotate', 'r'], ['flip', 'h'], ['invert', 'i'], ['sharpen', 's'], ['enhance', 'e'], ['auto', '0'], ['reset', '']];

  const App = {
    tool: 'window', viewports: [], active: null, link: true, firstImageMs: null, savedOnce: false, wlFrames: 0,
    init() {
      this.stage = document.getElementById('stage');
      this.toolbar = document.getElementById('toolbar');
      this.strip = document.getElementById('strip');
      this.panel = document.getElementById('panel');
      window.molarViewer = this;
      if (cfg.mode === 'mount') { this.initMount(); return; }
      this.buildToolbar();
      this.buildStrip();
      const sel = (cfg.select && cfg.select.length ? cfg.select : [cfg.items[0] && cfg.items[0].id]).filter(Boolean);
      const n = cfg.mode === 'compare' || cfg.mode === 'tooth' ? (sel.length > 2 ? 4 : Math.max(1, sel.length)) : 1;
      this.layout(n);
      sel.slice(0, this.viewports.length).forEach((id, i) => this.show(this.viewports[i], id));
      if (!sel.length) status(T('none'));
      this.bindKeys();
    },
    layout(n) {
      const keep = this.viewports.map((v) => v.item).filter(Boolean);
      this.stage.textContent = '';
      this.stage.dataset.layout = String(n);
      this.viewports = [];
      for (let i = 0; i < n; i++) {
        const host = el('div', { class: 'vw-vp' });
        this.stage.append(host);
        this.viewports.push(new Viewport(host, this));
      }
      this.activate(this.viewports[0]);
      keep.slice(0, n).forEach((it, i) => this.show(this.viewports[i], it.id));
      if (keep.length < n) {
        const rest = cfg.items.filter((it) => !keep.includes(it));
        for (let i = keep.length; i < n && rest.length; i++) this.show(this.viewports[i], rest.shift().id);
      }
    },
    show(vp, id) {
      const item = cfg.items.find((it) => it.id === id);
      if (!item) return;
      vp.load(item).then(() => {
        for (const li of this.strip.querySelectorAll('[data-item]')) li.classList.toggle('current', this.viewports.some((v) => v.item && v.item.id === li.dataset.item));
      }).catch((e) => status(String(e)));
    },
    activate(vp) {
      if (this.active === vp) return;
      this.active = vp;
      for (const v of this.viewports) v.host.classList.toggle('active', v === vp);
      this.renderPanel();
    },
    firstDrawn(vp) {
      if (this.firstImageMs === null) {
        this.firstImageMs = performance.now();
        performance.mark('molar:first-image');
        this.loadThumbs();
      }
      vp.host.dataset.drawn = '1';
    },
    // changed: the viewport's view or marks changed (window drags are hot).
    changed(vp, hot) {
      if (hot) { this.wlFrames++; this.linkedWindow(vp); return; }
      if (vp === this.active) this.renderPanel();
      this.syncButtons();
    },
    linkedWindow() { /* windows stay per image */ },
    linked(vp) {
      if (!this.link || this.viewports.length < 2) return;
      for (const o of this.viewports) {
        if (o === vp || !o.view) continue;
        o.view.zoom = vp.view.zoom; o.view.px = vp.view.px; o.view.py = vp.view.py; o.view.fitted = vp.view.fitted;
        o.draw();
      }
    },
    setTool(t) {
      this.tool = t;
      for (const v of this.viewports) v.draft = null;
      for (const b of this.toolbar.querySelectorAll('[data-tool]')) b.setAttribute('aria-pressed', String(b.dataset.tool === t));
    },
    syncButtons() {
      const v = this.active && this.active.view;
      if (!v) return;
      for (const name of ['invert', 'sharpen', 'enhance', 'flip']) {
        const b = this.toolbar.querySelector(`[data-cmd="${name}"]`);
        if (b) b.setAttribute('aria-pressed', String(!!(name === 'flip' ? v.flipH : v[name])));
      }
      const sel = this.toolbar.querySelector('#preset');
      if (sel && this.active.im) {
        const ps = presets(this.active.im);
        if (sel.dataset.sop !== this.active.im.sop) {
          sel.dataset.sop = this.active.im.sop;
          sel.textContent = '';
          sel.append(el('option', { value: '', text: T('preset') }), ...ps.map((p) => el('option', { value: p.id, text: p.name })));
        }
      }
    },
    buildToolbar() {
      const tb = this.toolbar;
      const group = (cls, ...kids) => el('div', { class: 'vw-group ' + cls }, ...kids);
      tb.append(group('tools', TOOLS.map(([t, key]) => el('button', { type: 'button', class: 'vw-btn', dataset: { tool: t, key }, title: T(t), 'aria-pressed': String(t === this.tool), onclick: () => this.setTool(t) }, T(t).replace(/ \(.+\)$/, '')))));
      tb.append(group('cmds', COMMANDS.map(([c, key]) => el('button', { type: 'button', class: 'vw-btn', dataset: { cmd: c, key }, title: T(c), onclick: () => this.active && this.active.cmd(c) }, T(c).replace(/ \(.+\)$/, '')))));
      const preset = el('select', { id: 'preset', class: 'vw-select', 'aria-label': T('preset'), onchange: (e) => { if (e.target.value) this.active.cmd('preset', e.target.value); e.target.value = ''; } });
      tb.append(group('presets', preset));
      const lay = group('layout', [1, 2, 4].map((n) => el('button', { type: 'button', class: 'vw-btn', dataset: { layout: String(n) }, title: T('layout' + n), onclick: () => this.layout(n) }, String(n))));
      const link = el('label', { class: 'vw-link' }, el('input', { type: 'checkbox', id: 'link', checked: true, onchange: (e) => { this.link = e.target.checked; } }), ' ' + T('link'));
      lay.append(link);
      tb.append(lay);
      tb.append(el('button', { type: 'button', class: 'vw-btn help', title: T('help'), onclick: () => this.toggleHelp() }, '?'));
    },
    toggleHelp() {
      let h = document.getElementById('vw-help');
      if (h) { h.remove(); return; }
      h = el('div', { id: 'vw-help', class: 'vw-help', role: 'dialog' }, T('shortcuts'));
      this.stage.append(h);
    },
    buildStrip() {
      const ul = el('ul', { class: 'vw-items' });
      for (const it of cfg.items) {
        const cv = el('canvas', { class: 'vw-thumb', width: '96', height: '72' });
        ul.append(el('li', { dataset: { item: it.id }, title: it.label },
          el('button', { type: 'button', onclick: () => this.show(this.active || this.viewports[0], it.id) }, cv, el('span', { class: 'vw-cap', text: it.label + (it.images[0].date ? ' · ' + it.images[0].date : '') }))));
      }
      this.strip.append(ul);
    },
    // thumbnails in the strip, after the first image: the stored thumbnail
    // (a few kB of JPEG made at ingest) where DICOMweb serves them, else
    // drawn from one frame (the whole frame is fetched for that).
    async loadThumbs() {
      for (const li of this.strip.querySelectorAll('[data-item]')) {
        const it = cfg.items.find((x) => x.id === li.dataset.item);
        const im = it.volume ? it.images[Math.floor(it.images.length / 2)] : it.images[0];
        if (cfg.thumbs && await this.storedThumb(li.querySelector('canvas'), im)) continue;
        try {
          const frame = it.volume ? 1 : Math.floor(im.frames / 2) + 1;
          const p = await fetchFrames(im, [frame]);
          const f = samples(im, p[0]);
          const cv = li.querySelector('canvas');
          const w = im.windowWidth && im.kind !== 'pano' ? { wc: im.windowCenter, ww: im.windowWidth } : autoWindow(im, f);
          const tmp = document.createElement('canvas'); tmp.width = im.cols; tmp.height = im.rows;
          const tctx = tmp.getContext('2d'), id = tctx.createImageData(im.cols, im.rows);
          const o = new Uint32Array(id.data.buffer);
          if (im.samples === 1) {
            const lut = buildLUT(im, f, { wc: w.wc, ww: w.ww });
            for (let i = 0; i < o.length; i++) o[i] = lut[f.data[i] - f.min];
          } else {
            for (let i = 0; i < o.length; i++) o[i] = 0xff000000 | (f.data[i * 3 + 2] << 16) | (f.data[i * 3 + 1] << 8) | f.data[i * 3];
          }
          tctx.putImageData(id, 0, 0);
          const ctx = cv.getContext('2d'), s = Math.min(cv.width / im.cols, cv.height / im.rows);
          ctx.imageSmoothingQuality = 'high';
          ctx.drawImage(tmp, (cv.width - im.cols * s) / 2, (cv.height - im.rows * s) / 2, im.cols * s, im.rows * s);
          cv.dataset.source = 'frame';
        } catch (e) { /* keep the empty thumbnail */ }
      }
    },
    // storedThumb draws the server's thumbnail of im on cv; false when it
    // could not be had (the caller then draws from a frame).
    storedThumb(cv, im) {
      return new Promise((resolve) => {
        const img = new Image();
        img.onload = () => {
          const ctx = cv.getContext('2d'), s = Math.min(cv.width / img.naturalWidth, cv.height / img.naturalHeight);
          ctx.imageSmoothingQuality = 'high';
          ctx.drawImage(img, (cv.width - img.naturalWidth * s) / 2, (cv.height - img.naturalHeight * s) / 2, img.naturalWidth * s, img.naturalHeight * s);
          cv.dataset.source = 'thumbnail';
          resolve(true);
        };
        img.onerror = () => resolve(false);
        img.src = `${cfg.dicomweb}/studies/${im.study}/series/${im.series}/instances/${im.sop}/thumbnail`;
      });
    },
    renderPanel() {
      const vp = this.active, p = this.panel;
      if (!p) return;
      p.textContent = '';
      if (!vp || !vp.im) return;
      const im = vp.im;
      p.append(el('h2', { text: T('measurements') }));
      const ul = el('ul', { id: 'measurements', class: 'vw-marks' });
      for (const a of vp.state ? vp.state.annotations : []) {
        ul.append(el('li', { dataset: { type: a.type, id: a.id } }, el('span', { class: 'vw-mark', text: describe(vp, a) }),
          el('button', { type: 'button', class: 'vw-x', title: T('delete'), onclick: () => vp.deleteAnnotation(a.id) }, '×')));
      }
      if (!ul.children.length) ul.append(el('li', { class: 'muted', text: T('none') }));
      p.append(ul);
      // Download: the stored DICOM (WADO-URI) and a PNG as displayed.
      const dl = el('div', { class: 'vw-dl' }, el('h2', { text: T('download') }),
        el('a', { class: 'button secondary', id: 'download-dicom', href: instanceURL(im), download: im.sop + '.dcm' }, T('dicom')), ' ',
        el('button', { type: 'button', class: 'button secondary', id: 'download-png', onclick: async () => {
          const blob = await vp.png();
          const a = el('a', { href: URL.createObjectURL(blob), download: im.sop + '.png' });
          document.body.append(a); a.click(); a.remove();
        } }, T('png')));
      p.append(dl);
      if (cfg.aes && cfg.aes.length) {
        const sel = el('select', { id: 'send-ae', class: 'vw-select' }, cfg.aes.map((t) => el('option', { value: t, text: t })));
        p.append(el('div', { class: 'vw-send' }, el('h2', { text: T('send') }), sel, ' ',
          el('button', { type: 'button', class: 'button secondary', id: 'send-button', onclick: async () => {
            const r = await api('POST', `${cfg.api}/images/${encodeURIComponent(im.sop)}/send`, { ae: sel.value });
            status(r.ok ? T('sent', sel.value) : T('sendfailed', (r.data && (r.data.error || r.data.status || r.data.detail)) || r.status));
          } }, T('send'))));
      }
      if (cfg.items.length > 1) {
        const others = cfg.items.filter((it) => it !== vp.item && !it.volume).slice(0, 3);
        const href = `/viewer/p/${cfg.person}/compare?` + [vp.item, ...others.slice(0, 1)].map((it) => 'i=' + encodeURIComponent(it.images[0].sop)).join('&');
        p.append(el('p', {}, el('a', { href, class: 'vw-compare' }, T('compare'))));
      }
      const tagsBox = el('details', { class: 'vw-tags' }, el('summary', { text: T('tags') }));
      tagsBox.addEventListener('toggle', async () => {
        if (!tagsBox.open || tagsBox.dataset.loaded) return;
        tagsBox.dataset.loaded = '1';
        const r = await api('GET', `${cfg.api}/images/${encodeURIComponent(im.sop)}/tags`);
        if (!r.ok) return;
        const filter = el('input', { type: 'search', class: 'vw-filter', placeholder: 'filter' });
        const tbody = el('tbody');
        const rows = r.data.tags.map((t) => el('tr', { dataset: { tag: t.tag } }, el('td', { class: 'vw-tag', text: '\u00a0'.repeat(t.depth * 2) + t.tag }), el('td', { text: t.name }), el('td', { text: t.vr }), el('td', { class: 'vw-val', text: t.value })));
        tbody.append(...rows);
        filter.addEventListener('input', () => { const q = filter.value.toLowerCase(); rows.forEach((tr) => { tr.hidden = q && !tr.textContent.toLowerCase().includes(q); }); });
        tagsBox.append(filter, el('table', { id: 'tag-table' }, tbody));
      });
      p.append(tagsBox);
      this.syncButtons();
    },
    bindKeys() {
      document.addEventListener('keydown', (e) => {
        if (e.target.closest('input, textarea, select') || e.ctrlKey || e.metaKey || e.altKey) return;
        const k = e.key.toLowerCase(), vp = this.active;
        const tool = TOOLS.find(([, key]) => key === k);
        if (tool) { this.setTool(tool[0]); e.preventDefault(); return; }
        const cmd = COMMANDS.find(([, key]) => key && key === k);
        if (cmd && vp) { vp.cmd(cmd[0]); e.preventDefault(); return; }
        if (!vp) return;
        switch (e.key) {
          case 'ArrowUp': case 'PageUp': vp.setSlice(vp.slice - 1); vp.updateInfo(); e.preventDefault(); break;
          case 'ArrowDown': case 'PageDown': vp.setSlice(vp.slice + 1); vp.updateInfo(); e.preventDefault(); break;
          case 'Delete': case 'Backspace': vp.cmd('delete'); e.preventDefault(); break;
          case 'Escape': vp.draft = null; vp.draw(); break;
          case '1': case '2': case '4': if (cfg.mode !== 'mount') this.layout(+e.key); break;
          case '?': this.toggleHelp(); break;
          case 'ArrowRight': case 'ArrowLeft': {
            const i = cfg.items.indexOf(vp.item) + (e.key === 'ArrowRight' ? 1 : -1);
            if (cfg.items[i]) this.show(vp, cfg.items[i].id);
            e.preventDefault(); break;
          }
        }
      });
    },
    // benchmarkWL draws n frames of a window/level drag on the active
    // viewport, synchronously (LUT + pixels + draw), and returns ms/frame.
    benchmarkWL(n) {
      const vp = this.active, v = vp.view, t0 = performance.now();
      const c0 = v.wc, w0 = v.ww;
      for (let i = 0; i < n; i++) {
        v.ww = w0 * (0.6 + 0.4 * ((i % 20) / 20)); v.wc = c0 + (i % 7) * 3;
        vp.drawNow();
      }
      vp.ctx.getImageData(0, 0, 1, 1); // wait for the canvas
      v.wc = c0; v.ww = w0; vp.drawNow();
      return (performance.now() - t0) / n;
    },

    // ---------- mounts ----------
    initMount() {
      const m = cfg.mount, t = m.template;
      this.toolbar.append(
        el('span', { class: 'muted', text: T('mount.hint') }), ' ',
        el('button', { type: 'button', class: 'vw-btn', id: 'mount-rotate', onclick: () => this.mountCmd('rotate') }, T('mount.rotate')),
        el('button', { type: 'button', class: 'vw-btn', id: 'mount-flip', onclick: () => this.mountCmd('flip') }, T('mount.flip')));
      this.strip.hidden = true; this.panel.hidden = true;
      const board = el('div', { class: 'vw-mount', id: 'mount' });
      this.stage.append(board);
      this.board = board;
      const fitBoard = () => {
        const r = this.stage.getBoundingClientRect();
        const s = Math.min(r.width / t.width, r.height / t.height);
        board.style.width = (t.width * s) + 'px'; board.style.height = (t.height * s) + 'px';
      };
      new ResizeObserver(fitBoard).observe(this.stage);
      fitBoard();
      this.slots = new Map();
      for (const s of t.slots) {
        const d = el('div', { class: 'vw-slot', dataset: { slot: String(s.n), teeth: s.teeth.join(' ') }, title: s.teeth.join(' ') });
        d.style.left = (100 * s.x / t.width) + '%'; d.style.top = (100 * s.y / t.height) + '%';
        d.style.width = (100 * s.w / t.width) + '%'; d.style.height = (100 * s.h / t.height) + '%';
        d.append(el('span', { class: 'vw-slot-label', text: s.teeth.join(' ') || String(s.n) }));
        board.append(d);
        this.slots.set(s.n, d);
        d.addEventListener('click', () => this.selectSlot(s.n));
        d.addEventListener('dblclick', () => {
          const p = this.placement(s.n);
          if (p) { const im = this.imageOf(p.sop); location.href = `/viewer/p/${cfg.person}/studies/${im.study}?i=${encodeURIComponent(p.sop)}`; }
        });
        d.addEventListener('dragover', (e) => { e.preventDefault(); d.classList.add('over'); });
        d.addEventListener('dragleave', () => d.classList.remove('over'));
        d.addEventListener('drop', (e) => {
          e.preventDefault(); d.classList.remove('over');
          const sop = e.dataTransfer.getData('text/x-molar-sop');
          if (sop) this.moveTo(s.n, sop);
        });
      }
      this.renderMount();
    },
    imageOf(sop) { for (const it of cfg.items) for (const im of it.images) if (im.sop === sop) return im; return null; },
    placement(n) { return cfg.mount.placements.find((p) => p.slot === n); },
    renderMount() {
      for (const [n, d] of this.slots) {
        const p = this.placement(n);
        const old = d.querySelector('.vw-vp');
        if (old && (!p || old.dataset.sop !== p.sop)) { old.remove(); }
        d.classList.toggle('empty', !p);
        d.dataset.sop = p ? p.sop : '';
        if (!p) continue;
        let host = d.querySelector('.vw-vp');
        const im = this.imageOf(p.sop);
        if (!im) continue;
        if (!host) {
          host = el('div', { class: 'vw-vp', draggable: 'true' });
          host.addEventListener('dragstart', (e) => { e.dataTransfer.setData('text/x-molar-sop', p.sop); e.dataTransfer.effectAllowed = 'move'; });
          d.append(host);
          const vp = new Viewport(host, this, true);
          host.vp = vp;
          this.viewports.push(vp);
          const item = cfg.items.find((it) => it.images.some((x) => x.sop === p.sop));
          vp.load(item).then(() => { vp.view.extraRot = p.rotate; vp.view.extraFlip = p.flip; vp.fit(true); });
        } else if (host.vp && host.vp.view) {
          host.vp.view.extraRot = p.rotate; host.vp.view.extraFlip = p.flip; host.vp.fit(true);
        }
        host.dataset.rotate = String(p.rotate); host.dataset.flip = String(p.flip);
      }
      this.viewports = this.viewports.filter((v) => v.host.isConnected);
    },
    selectSlot(n) {
      this.selected = n;
      for (const [k, d] of this.slots) d.classList.toggle('selected', k === n);
    },
    async moveTo(slot, sop, rotate, flip) {
      const target = cfg.mount.template.slots.find((s) => s.n === slot);
      const cur = cfg.mount.placements.find((p) => p.sop === sop);
      const r = await api('POST', `${cfg.api}/mounts/${cfg.mount.id}/slots`, {
        slot, sop, rotate: rotate !== undefined ? rotate : (cur && cur.slot === slot ? cur.rotate : target.rotate),
        flip: flip !== undefined ? flip : (cur && cur.slot === slot ? cur.flip : target.flip),
      });
      if (!r.ok) { status(T('savefailed')); return; }
      cfg.mount.placements = r.data.placements;
      this.renderMount();
      status(T('saved'));
    },
    mountCmd(c) {
      const p = this.selected && this.placement(this.selected);
      if (!p) return;
      if (c === 'rotate') this.moveTo(p.slot, p.sop, (p.rotate + 90) % 360, p.flip);
      else this.moveTo(p.slot, p.sop, p.rotate, !p.flip);
    },
  };

  // Leaving the page: send edits still waiting for their save.
  window.addEventListener('pagehide', () => {
    for (const vp of App.viewports) {
      if (!vp.dirty || vp.saving || !vp.im) continue;
      fetch(`${cfg.api}/images/${encodeURIComponent(vp.im.sop)}/state`, {
        method: 'PUT', keepalive: true, credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
        body: JSON.stringify({ version: vp.version, state: vp.state }),
      });
    }
  });

  App.init();
})();
