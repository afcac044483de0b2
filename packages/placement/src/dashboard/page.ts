// DASHBOARD_PAGE is the whole dashboard as one self-contained HTML string
// (inline CSS and JS, nothing fetched from elsewhere): served from memory so
// the bundled dist/ build needs no file beside it. Every value from the
// cluster (keys above all) is written with textContent, never as HTML.

import { HEATMAP_BODY, HEATMAP_SCRIPT, HEATMAP_STYLE } from './heatmap-page';

const STYLE = `
body{font:13px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{display:flex;gap:16px;align-items:baseline;padding:10px 16px;background:#1d2330;color:#fff}
header h1{font-size:16px;margin:0}
#conn{padding:1px 8px;border-radius:9px;background:#777}
#conn.live{background:#2e8b57}#conn.down{background:#b22}
main{padding:8px 16px;display:grid;gap:12px}
section{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px 12px}
h2{font-size:14px;margin:0 0 6px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:2px 8px;border-bottom:1px solid #eef;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.chip{display:inline-block;min-width:14px;padding:0 5px;border-radius:4px;color:#fff;text-align:center}
.map{position:relative;height:34px;background:#eef;border-radius:4px;overflow:hidden;margin:4px 0 10px}
.map div{position:absolute;top:0;bottom:0;border-right:1px solid #fff;box-sizing:border-box;font-size:11px;color:#fff;overflow:hidden;padding:2px}
.bar{display:inline-block;width:80px;height:8px;background:#eee;border-radius:4px;vertical-align:middle}
.bar span{display:block;height:8px;background:#4a7bd0;border-radius:4px}
.muted{color:#889}.grid2{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.state-up{color:#2e8b57}.state-down,.state-tombstone{color:#b22}.state-disconnected,.state-offline{color:#c80}
`;

const SCRIPT = `
'use strict';
const token = new URLSearchParams(location.search).get('token');
const q = token !== null ? '?token=' + encodeURIComponent(token) : '';
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else if (k === 'style') e.style.cssText = v; else e.setAttribute(k, String(v));
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k === null || k === undefined ? '' : String(k)));
  return e;
}
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#6b6ecf'];
const color = (id) => id === null ? '#999' : PALETTE[id % PALETTE.length];
const chip = (id) => el('span', { class: 'chip', style: 'background:' + color(id) }, id === null ? '-' : id);
function bytes(n) {
  if (n === null || n === undefined) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}
const rate = (n) => n === 0 ? '0' : n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString();
const num = (v) => el('td', { class: 'num' }, v);
const time = (ms) => new Date(ms).toLocaleTimeString();
function table(id, head, rows) {
  const t = $(id); t.replaceChildren(el('tr', {}, ...head.map((h) => el('th', { class: h.startsWith('#') ? 'num' : '' }, h.replace(/^#/, '')))));
  for (const r of rows) t.append(r);
  if (rows.length === 0) t.append(el('tr', {}, el('td', { class: 'muted', colspan: head.length }, 'none')));
}
function drawStores(s) {
  table('stores', ['store', 'address', 'state', '#capacity', 'used', '#available', '#regions', '#leaders'], s.stores.map((st) => {
    const pct = st.capacityBytes ? Math.min(100, (100 * st.usedBytes) / st.capacityBytes) : 0;
    return el('tr', { 'data-store-id': st.id }, el('td', {}, chip(st.id)), el('td', {}, st.address),
      el('td', { class: 'state-' + st.state }, st.state + (st.lowSpace ? ' (low space)' : '')), num(bytes(st.capacityBytes)),
      el('td', {}, el('span', { class: 'bar', title: pct.toFixed(1) + '%' }, el('span', { style: 'width:' + pct + '%' })), ' ', bytes(st.usedBytes)),
      num(bytes(st.availableBytes)), num(st.regionCount), num(st.leaderCount));
  }));
}
function regionTitle(r) {
  return 'Region ' + r.id + ' [' + JSON.stringify(r.startKey) + ', ' + JSON.stringify(r.endKey) + ')\\nleader store ' + r.leaderStoreId +
    ', peers on ' + r.peerStoreIds.join(', ') + '\\n' + bytes(r.approximateSizeBytes) + ', ' + r.approximateKeys + ' keys' +
    '\\nwrite ' + rate(r.flow.writeKeysPerSec) + ' keys/s ' + bytes(r.flow.writeBytesPerSec) + '/s, read ' + rate(r.flow.readKeysPerSec) + ' keys/s ' + bytes(r.flow.readBytesPerSec) + '/s';
}
function drawMaps(s) {
  const scaled = $('map-scale'), even = $('map-even');
  scaled.replaceChildren(); even.replaceChildren();
  const n = s.regions.length;
  s.regions.forEach((r, i) => {
    const w = Math.max(0, r.endFrac - r.startFrac) * 100;
    scaled.append(el('div', { 'data-map-region-id': r.id, title: regionTitle(r), style: 'left:' + (r.startFrac * 100) + '%;width:max(3px,' + w + '%);background:' + color(r.leaderStoreId) }, r.id));
    even.append(el('div', { title: regionTitle(r), style: 'left:' + (100 * i / n) + '%;width:' + (100 / n) + '%;background:' + color(r.leaderStoreId) + ';opacity:' + (0.45 + 0.55 * Math.min(1, r.approximateSizeBytes / Math.max(1, ...s.regions.map((x) => x.approximateSizeBytes)))) }, r.id));
  });
  $('map-note').textContent = s.regions.length < s.regionTotal ? 'showing the first ' + s.regions.length + ' of ' + s.regionTotal + ' Regions' : s.regionTotal + ' Regions';
}
const flowCells = (f) => [num(rate(f.readKeysPerSec)), num(bytes(f.readBytesPerSec) + '/s'), num(rate(f.writeKeysPerSec)), num(bytes(f.writeBytesPerSec) + '/s')];
function drawRegions(s) {
  table('regions', ['region', 'start', 'end', 'leader', 'peers', '#size', '#keys', '#read keys/s', '#read', '#write keys/s', '#write'], s.regions.map((r) =>
    el('tr', { 'data-region-id': r.id }, el('td', {}, r.id), el('td', {}, JSON.stringify(r.startKey)), el('td', {}, JSON.stringify(r.endKey)), el('td', {}, chip(r.leaderStoreId)),
      el('td', {}, ...r.peerStoreIds.map(chip)), num(bytes(r.approximateSizeBytes)), num(r.approximateKeys), ...flowCells(r.flow))));
}
function drawHot(id, list) {
  table(id, ['region', 'leader', '#read keys/s', '#read', '#write keys/s', '#write'], list.map((r) => el('tr', { 'data-hot-region-id': r.id }, el('td', { title: regionTitle(r) }, r.id), el('td', {}, chip(r.leaderStoreId)), ...flowCells(r.flow))));
}
function drawOperators(s) {
  table('operators', ['id', 'region', 'kind', 'scheduler', 'step', 'description'], s.operators.map((o) =>
    el('tr', {}, el('td', {}, o.id), el('td', {}, o.regionId), el('td', {}, o.kind), el('td', {}, o.scheduler), el('td', {}, (o.currentStep + 1) + '/' + o.steps.length), el('td', {}, o.description))));
  const recent = s.recentOperators.map((o) => ({ atMs: o.atMs, kind: o.kind, regionId: o.regionId, outcome: o.outcome, text: o.description + (o.reason ? ' (' + o.reason + ')' : '') }))
    .concat(s.regionChanges.map((c) => ({ atMs: c.atMs, kind: c.kind, regionId: c.regionId, outcome: 'observed', text: c.description })))
    .sort((a, b) => b.atMs - a.atMs).slice(0, 50);
  table('recent', ['time', 'kind', 'region', 'outcome', 'description'], recent.map((o) =>
    el('tr', { 'data-recent-kind': o.kind }, el('td', {}, time(o.atMs)), el('td', {}, o.kind), el('td', {}, o.regionId), el('td', {}, o.outcome), el('td', {}, o.text))));
}
function drawMembers(s) {
  const g = s.group;
  if (!g) { $('tso').textContent = 'not served by a placement member'; table('members', [], []); return; }
  $('tso').textContent = 'term ' + g.term + ' · commit index ' + g.commitIndex + ' · TSO ' + (g.tso.serving ? 'serving' : 'not serving') +
    ', persisted bound ' + (g.tso.upperBoundMs > 0 ? new Date(g.tso.upperBoundMs).toISOString() : 'none') + ' (' + g.tso.extensions + ' windows persisted this term)';
  table('members', ['name', 'id', 'address', 'role', 'term', '#match index'], g.members.map((m) =>
    el('tr', { 'data-member': m.name }, el('td', {}, m.name), el('td', {}, m.id), el('td', {}, m.address), el('td', { class: 'role-' + m.role }, m.role), el('td', {}, m.term || '?'), num(m.matchIndex === null ? '?' : m.matchIndex))));
}
function draw(s) {
  $('cluster').textContent = 'cluster ' + s.cluster.clusterId + (s.cluster.bootstrapped ? '' : ' (not bootstrapped)') + ' · ' + s.stores.length + ' stores · ' + s.regionTotal + ' Regions · max-replicas ' + s.cluster.maxReplicas;
  $('updated').textContent = 'updated ' + time(s.atMs);
  drawMembers(s);
  drawStores(s); drawMaps(s); drawRegions(s);
  drawHot('hot-write', s.hot.writeBytes.length > 0 ? s.hot.writeBytes : s.hot.writeKeys);
  drawHot('hot-read', s.hot.readBytes.length > 0 ? s.hot.readBytes : s.hot.readKeys);
  drawOperators(s);
  maybeHeatmap(s);
  document.body.dataset.snapshotAt = String(s.atMs);
}
${HEATMAP_SCRIPT}
function setConn(state, text) { const c = $('conn'); c.className = state; c.textContent = text; }
fetch('/dashboard/snapshot' + q).then((r) => r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status))).then(draw).catch((e) => setConn('down', 'error: ' + e.message));
const es = new EventSource('/dashboard/events' + q);
es.addEventListener('snapshot', (ev) => { setConn('live', 'live'); draw(JSON.parse(ev.data)); });
es.onerror = () => setConn('down', 'reconnecting');
`;

const BODY = `
<header><h1>Flotilla</h1><span id="cluster">loading…</span><span id="conn">connecting</span><span id="updated" class="muted"></span></header>
<main>
<section><h2>Stores</h2><table id="stores"></table></section>
<section><h2>Region map <span id="map-note" class="muted"></span></h2>
<div class="muted">key space to scale (colored by leader store)</div><div class="map" id="map-scale"></div>
<div class="muted">one slot per Region (opacity by size)</div><div class="map" id="map-even"></div></section>
${HEATMAP_BODY}
<div class="grid2">
<section><h2>Hot Regions: writes</h2><table id="hot-write"></table></section>
<section><h2>Hot Regions: reads</h2><table id="hot-read"></table></section>
</div>
<section><h2>Regions</h2><table id="regions"></table></section>
<div class="grid2">
<section><h2>Operators in flight</h2><table id="operators"></table></section>
<section><h2>Recent operators and Region changes</h2><table id="recent"></table></section>
</div>
<section><h2>Placement members and TSO</h2><div id="tso" class="muted"></div><table id="members"></table></section>
</main>`;

/** DASHBOARD_PAGE is served at GET /dashboard. */
export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Flotilla dashboard</title><style>${STYLE}${HEATMAP_STYLE}</style></head>
<body>${BODY}
<script>${SCRIPT}</script>
</body></html>
`;
