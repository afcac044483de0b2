// The dashboard's key visualizer panel (page.ts puts it into the page):
// a <canvas> with time across and the key axis down, colour by the chosen
// metric (log scale, so one hot Region does not wash out the rest), key
// and time labels, a legend and a hover tooltip. The page fetches
// /dashboard/heatmap again only when the live snapshot says a column was
// added (or the metric changed): a column is recorded every interval,
// and the whole map is up to 360 × 256 rows. Keys are drawn with
// fillText or written with textContent, never as HTML.

/** HEATMAP_STYLE is the panel's CSS. */
export const HEATMAP_STYLE = `
.hm-wrap{position:relative}
#heatmap{display:block;width:100%;height:380px;cursor:crosshair}
#hm-tip{position:absolute;display:none;pointer-events:none;background:rgba(20,24,34,.92);color:#fff;padding:4px 8px;border-radius:4px;font-size:12px;white-space:pre;z-index:2}
.hm-bar{display:flex;gap:12px;align-items:center;margin-bottom:6px}
#hm-legend{width:220px;height:14px;border:1px solid #ccd}
`;

/** HEATMAP_BODY is the panel's HTML. */
export const HEATMAP_BODY = `
<section id="heatmap-panel"><h2>Key visualizer</h2>
<div class="hm-bar"><label>colour by <select id="hm-metric">
<option value="write_bytes">write bytes</option><option value="read_bytes">read bytes</option>
<option value="write_keys">write keys</option><option value="read_keys">read keys</option></select></label>
<span class="muted" id="hm-low">0</span><canvas id="hm-legend" width="220" height="14"></canvas><span class="muted" id="hm-high"></span></div>
<div class="hm-wrap"><canvas id="heatmap" height="380"></canvas><div id="hm-tip"></div></div>
<div class="muted" id="hm-note">waiting for the first column…</div></section>`;

/** HEATMAP_SCRIPT is the panel's code; it uses page.ts's $, q, bytes, rate and time. */
export const HEATMAP_SCRIPT = `
const HM = { left: 190, right: 12, top: 6, bottom: 34, background: '#1b2233' };
const HM_STOPS = [[37, 52, 148], [44, 160, 160], [120, 200, 80], [250, 220, 50], [240, 90, 40]];
let hm = null, hmFor = null, hmLoading = false, hmMetric = 'write_bytes';
function hmColor(t) {
  const x = Math.max(0, Math.min(1, t)) * (HM_STOPS.length - 1), i = Math.min(HM_STOPS.length - 2, Math.floor(x)), f = x - i;
  const a = HM_STOPS[i], b = HM_STOPS[i + 1];
  return 'rgb(' + [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f)).join(',') + ')';
}
const hmLevel = (v) => hm.maxValue > 0 ? Math.log1p(v) / Math.log1p(hm.maxValue) : 0;
const hmAmount = (v) => hm.unit === 'bytes' ? bytes(v) : rate(v) + ' keys';
const hmKey = (i) => hm.keys[i] !== '' ? hm.keys[i] : i === 0 ? '(start)' : '(end)';
const hmShort = (s) => s.length > 26 ? s.slice(0, 25) + '…' : s;
function hmPlot(c) { return { left: HM.left, top: HM.top, width: c.width - HM.left - HM.right, height: c.height - HM.top - HM.bottom }; }
function drawHeatmap() {
  const c = $('heatmap'), ctx = c.getContext('2d');
  c.width = Math.max(400, Math.round(c.clientWidth || 1200));
  const p = hmPlot(c);
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.fillStyle = HM.background; ctx.fillRect(p.left, p.top, p.width, p.height);
  c.dataset.plot = JSON.stringify(p);
  if (hm === null || hm.columns.length === 0) { c.dataset.columns = '0'; return; }
  const t0 = hm.columns[0].startMs, t1 = hm.columns[hm.columns.length - 1].endMs, span = Math.max(1, hm.keys.length - 1);
  const x = (t) => p.left + ((t - t0) / Math.max(1, t1 - t0)) * p.width;
  const y = (i) => p.top + (i / span) * p.height;
  for (const col of hm.columns) {
    const x0 = Math.floor(x(col.startMs)), x1 = Math.ceil(x(col.endMs));
    for (let r = 0; r < col.rows.length; r += 3) {
      const v = col.rows[r + 2];
      if (v <= 0) continue;
      const y0 = Math.floor(y(col.rows[r])), y1 = Math.ceil(y(col.rows[r + 1]));
      ctx.fillStyle = hmColor(0.08 + 0.92 * hmLevel(v));
      ctx.fillRect(x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0));
    }
  }
  ctx.fillStyle = '#445'; ctx.font = '11px system-ui,sans-serif'; ctx.textBaseline = 'middle'; ctx.textAlign = 'right';
  const keyStep = Math.max(1, Math.ceil(span / Math.max(1, Math.floor(p.height / 18))));
  for (let i = 0; i <= span; i += keyStep) ctx.fillText(hmShort(hmKey(i)), p.left - 6, Math.min(p.top + p.height - 5, Math.max(p.top + 5, y(i))));
  ctx.textAlign = 'center'; ctx.textBaseline = 'top';
  const ticks = Math.max(1, Math.min(8, hm.columns.length));
  for (let k = 0; k <= ticks; k++) {
    const t = t0 + ((t1 - t0) * k) / ticks;
    ctx.textAlign = k === 0 ? 'left' : k === ticks ? 'right' : 'center';
    ctx.fillText(time(t), x(t), p.top + p.height + 6);
  }
  c.dataset.columns = String(hm.columns.length);
  c.dataset.span = String(span);
  c.dataset.metric = hm.metric;
}
function drawHeatmapLegend() {
  const l = $('hm-legend'), ctx = l.getContext('2d');
  for (let i = 0; i < l.width; i++) { ctx.fillStyle = hmColor(0.08 + (0.92 * i) / (l.width - 1)); ctx.fillRect(i, 0, 1, l.height); }
  $('hm-high').textContent = hm && hm.maxValue > 0 ? hmAmount(hm.maxValue) + ' per ' + hm.intervalMs / 1000 + ' s (log scale)' : 'no traffic yet';
}
function hmNote() {
  const who = hm.recordedBy ? 'the placement leader ' + hm.recordedBy.name + ' (term ' + hm.recordedBy.term + ')' : 'this placement';
  $('hm-note').textContent = 'Recorded in memory by ' + who + ' since ' + time(hm.sinceMs) + ' (a follower shows its leader\\'s map): one column per ' + hm.intervalMs / 1000 +
    ' s (shown once the next one has ended too: a heartbeat\\'s traffic is spread over the time it covers), the last ' + hm.maxColumns + ' kept, at most ' + hm.maxRows + ' rows each (adjacent Regions merged, hot ones kept apart). Not persisted: a new leader starts an empty map. ' +
    'The key axis places Region boundaries by rank, not to scale; keys are cut at ' + hm.keyBytes + ' bytes.';
}
function fetchHeatmap(summary) {
  if (hmLoading) return;
  hmLoading = true;
  const want = summary ? summary.lastColumnEndMs : hmFor;
  fetch('/dashboard/heatmap' + q + (q ? '&' : '?') + 'metric=' + encodeURIComponent(hmMetric))
    .then((r) => r.ok ? r.json() : Promise.reject(new Error('HTTP ' + r.status)))
    .then((v) => { hm = v; hmFor = want; drawHeatmap(); drawHeatmapLegend(); hmNote(); document.body.dataset.heatmapAt = String(want); })
    .catch((e) => { $('hm-note').textContent = 'key visualizer: ' + e.message; })
    .finally(() => { hmLoading = false; });
}
/** maybeHeatmap is called with every snapshot: a new column (or none fetched yet) means fetch again. */
function maybeHeatmap(s) {
  if (!s.heatmap) return;
  if (hm === null || s.heatmap.lastColumnEndMs !== hmFor) fetchHeatmap(s.heatmap);
}
$('hm-metric').addEventListener('change', (e) => { hmMetric = e.target.value; hmFor = null; fetchHeatmap(null); });
window.addEventListener('resize', () => { if (hm !== null) drawHeatmap(); });
$('heatmap').addEventListener('mousemove', (e) => {
  const tip = $('hm-tip'), c = $('heatmap');
  if (hm === null || hm.columns.length === 0) { tip.style.display = 'none'; return; }
  const box = c.getBoundingClientRect(), p = hmPlot(c);
  const px = ((e.clientX - box.left) * c.width) / box.width, py = ((e.clientY - box.top) * c.height) / box.height;
  const t0 = hm.columns[0].startMs, t1 = hm.columns[hm.columns.length - 1].endMs, span = Math.max(1, hm.keys.length - 1);
  const t = t0 + ((px - p.left) / p.width) * (t1 - t0), rank = ((py - p.top) / p.height) * span;
  const col = hm.columns.find((cl) => cl.startMs <= t && t < cl.endMs);
  let row = -1;
  if (col) for (let r = 0; r < col.rows.length; r += 3) if (col.rows[r] <= rank && rank < col.rows[r + 1]) { row = r; break; }
  if (!col || row < 0) { tip.style.display = 'none'; return; }
  const v = col.rows[row + 2], secs = (col.endMs - col.startMs) / 1000;
  tip.textContent = '[' + hmKey(col.rows[row]) + ', ' + hmKey(col.rows[row + 1]) + ')\\n' + time(col.startMs) + ' – ' + time(col.endMs) + '\\n' +
    $('hm-metric').selectedOptions[0].textContent + ': ' + hmAmount(v) + ' (' + (hm.unit === 'bytes' ? bytes(v / secs) + '/s' : rate(v / secs) + ' keys/s') + ')';
  tip.style.display = 'block';
  tip.style.left = Math.min(e.clientX - box.left + 14, box.width - 260) + 'px';
  tip.style.top = (e.clientY - box.top + 14) + 'px';
});
$('heatmap').addEventListener('mouseleave', () => { $('hm-tip').style.display = 'none'; });
drawHeatmap(); drawHeatmapLegend();
`;
