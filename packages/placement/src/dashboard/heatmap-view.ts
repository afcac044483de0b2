import { PlacementError, PlacementErrorCode } from '../errors';
import { renderKey } from '../http';
import { HEATMAP_KEY_BYTES, HEATMAP_METRICS, type HeatmapColumn, type HeatmapMetric } from './heatmap';

// GET /dashboard/heatmap?metric=…: the recorded columns on one key axis.
//
// Columns recorded under different Region layouts (before and after a
// split or merge, or merged differently) share one axis: the sorted union
// of every column's row boundaries. The page places boundary i at height
// i / (keys - 1), by rank and not by key value: real keys share long
// prefixes ("user:…", table IDs), so placed by value nearly all traffic
// would be a sliver of the picture; by rank each boundary gets the same
// height, and a row that a later split cut in two still spans exactly the
// two rows it became, so the picture stays continuous (TiDB's key-vis
// builds its axis the same way).

/** METRIC_NAMES: the metric query values, snake case as in TiDB, or camel case as /regions/hot's `by`. */
const METRIC_NAMES: Record<string, HeatmapMetric> = {
  write_bytes: 'write_bytes',
  read_bytes: 'read_bytes',
  write_keys: 'write_keys',
  read_keys: 'read_keys',
  writeBytes: 'write_bytes',
  readBytes: 'read_bytes',
  writeKeys: 'write_keys',
  readKeys: 'read_keys',
};

/** parseHeatmapMetric reads `metric` (default write_bytes); anything else is a 400 naming the choices. */
export function parseHeatmapMetric(text: string | null): HeatmapMetric {
  if (text === null) return 'write_bytes';
  const metric = Object.hasOwn(METRIC_NAMES, text) ? METRIC_NAMES[text] : undefined;
  if (metric === undefined) throw new PlacementError(PlacementErrorCode.InvalidArgument, `metric: ${JSON.stringify(text)} is not one of ${HEATMAP_METRICS.join(', ')}`);
  return metric;
}

/**
 * HeatmapView is the JSON the page draws: keys (the shared axis, rendered
 * as renderKey does; the last one is "" when it stands for the end of the
 * key space), and per column its rows as flat triples
 * [startIndex, endIndex, value] into keys, value in bytes or keys over the
 * column's interval.
 */
export interface HeatmapView {
  metric: HeatmapMetric;
  unit: 'bytes' | 'keys';
  intervalMs: number;
  maxColumns: number;
  maxRows: number;
  sinceMs: number;
  keyBytes: number;
  keys: string[];
  maxValue: number;
  columns: { startMs: number; endMs: number; rows: number[] }[];
}

/** heatmapView maps the recorded columns onto one axis, for one metric. */
export function heatmapView(
  columns: readonly HeatmapColumn[],
  metric: HeatmapMetric,
  sizes: { intervalMs: number; maxColumns: number; maxRows: number; sinceMs: number },
): HeatmapView {
  const m = HEATMAP_METRICS.indexOf(metric);
  const bounds = new Set<string>();
  let toEnd = false;
  for (const c of columns) {
    for (const s of c.starts) bounds.add(s);
    for (const e of c.ends) {
      if (e === '') toEnd = true;
      else bounds.add(e);
    }
  }
  // The default sort compares UTF-16 code units; these strings hold one byte per char, so this is byte order.
  const sorted = [...bounds].sort();
  const index = new Map(sorted.map((k, i) => [k, i] as const));
  const keys = sorted.map((k) => renderKey(Buffer.from(k, 'latin1')));
  if (toEnd) keys.push('');
  let maxValue = 0;
  const out = columns.map((c) => {
    const rows: number[] = [];
    for (let i = 0; i < c.starts.length; i++) {
      const end = c.ends[i]!;
      const value = Math.round(c.values[i * HEATMAP_METRICS.length + m]! * 10) / 10;
      if (value > maxValue) maxValue = value;
      rows.push(index.get(c.starts[i]!)!, end === '' ? sorted.length : index.get(end)!, value);
    }
    return { startMs: c.startMs, endMs: c.endMs, rows };
  });
  return { metric, unit: metric.endsWith('bytes') ? 'bytes' : 'keys', ...sizes, keyBytes: HEATMAP_KEY_BYTES, keys, maxValue, columns: out };
}
