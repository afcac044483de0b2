import type { RegionFlow } from '@flotilla/placement/client';

/**
 * FlowCounter counts a peer's client traffic between two Region
 * heartbeats: four additions per request, no allocation. take() turns the
 * counts into rates per second for the heartbeat (placement's hot Regions,
 * the dashboard, `flotilla regions --hot`) and starts the next interval.
 */
export class FlowCounter {
  private readKeys = 0;
  private readBytes = 0;
  private writeKeys = 0;
  private writeBytes = 0;
  private sinceMs = -1;
  /** totalBytes: read and written bytes since the peer started, never reset (load-based split diffs it per window). */
  totalBytes = 0;

  read(keys: number, bytes: number): void {
    this.readKeys += keys;
    this.readBytes += bytes;
    this.totalBytes += bytes;
  }

  write(keys: number, bytes: number): void {
    this.writeKeys += keys;
    this.writeBytes += bytes;
    this.totalBytes += bytes;
  }

  /** hasUnreported: traffic was counted since the last take (a hibernated Region reports it at the normal pace, not 6 intervals late). */
  get hasUnreported(): boolean {
    return this.readKeys + this.readBytes + this.writeKeys + this.writeBytes > 0;
  }

  /**
   * restart drops what was counted and starts a new interval at nowMs. A
   * peer that becomes leader calls it: counts left from an earlier term as
   * leader (it stopped reporting when it lost leadership) would otherwise
   * be reported now, as traffic placement's hot Regions and key visualizer
   * would place in the wrong minutes.
   */
  restart(nowMs: number): void {
    this.readKeys = this.readBytes = this.writeKeys = this.writeBytes = 0;
    this.sinceMs = nowMs;
  }

  /** take returns the rates since the previous take (all zero the first time, which has no interval) and resets the counts. */
  take(nowMs: number): RegionFlow {
    const seconds = this.sinceMs < 0 ? 0 : Math.max(0.001, (nowMs - this.sinceMs) / 1000);
    const rate = (n: number): number => (seconds === 0 ? 0 : Math.round((n / seconds) * 10) / 10);
    const flow = { readKeysPerSec: rate(this.readKeys), readBytesPerSec: rate(this.readBytes), writeKeysPerSec: rate(this.writeKeys), writeBytesPerSec: rate(this.writeBytes) };
    this.readKeys = this.readBytes = this.writeKeys = this.writeBytes = 0;
    this.sinceMs = nowMs;
    return flow;
  }
}
