import { describe, expect, it } from 'vitest';
import { StoreMetrics } from '../../src/metrics';

// The store's /metrics through prom-client: the names dashboards and tests read, labels where they help.

describe('StoreMetrics', () => {
  it('renders counters, gauges, drops by reason, Regions by role and latency histograms in the Prometheus format', async () => {
    const m = new StoreMetrics();
    m.proposals = 7;
    m.entriesApplied = 5;
    m.regions = 10;
    m.leaders = 4;
    m.hibernated = 3;
    m.dropMessage('stale-peer');
    m.dropMessage('stale-peer');
    m.dropMessage('mailbox-full');
    m.observeWrite(3); // 3 ms: in the 0.005 s bucket
    m.observeResponses([{ at: 100 }, { at: 90 }], 110);
    const text = await m.render();
    expect(text).toContain('# TYPE flotilla_proposals_total counter\nflotilla_proposals_total 7\n');
    expect(text).toContain('flotilla_entries_applied_total 5\n');
    expect(text).toContain('flotilla_raft_messages_dropped_total 3\n');
    expect(text).toContain('flotilla_raft_messages_dropped_by_reason_total{reason="stale-peer"} 2\n');
    expect(text).toContain('flotilla_raft_messages_dropped_by_reason_total{reason="mailbox-full"} 1\n');
    expect(text).toContain('# TYPE flotilla_regions gauge\nflotilla_regions 10\n');
    expect(text).toContain('flotilla_region_peers{role="leader"} 4\n');
    expect(text).toContain('flotilla_region_peers{role="follower"} 6\n');
    expect(text).toContain('flotilla_hibernated_regions 3\n');
    expect(text).toContain('flotilla_log_write_seconds_bucket{le="0.0025"} 0\n');
    expect(text).toContain('flotilla_log_write_seconds_bucket{le="0.005"} 1\n');
    expect(text).toContain('flotilla_log_write_seconds_count 1\n');
    expect(text).toContain('flotilla_command_seconds_count 2\n');
    // Scraped again later, the counters follow the numbers (collected at scrape time, never double counted).
    m.proposals = 9;
    expect(await m.render()).toContain('flotilla_proposals_total 9\n');
    // Two stores in one process keep their own registries.
    expect(await new StoreMetrics().render()).toContain('flotilla_proposals_total 0\n');
  });
});
