// Wire types of the GC safe point API (PD's GetGCSafePoint and
// UpdateServiceGCSafePoint). Timestamps are hybrid timestamps (bigint; a
// msgpack integer on the wire, which decodes as number below 2^53, so
// readers take BigInt() of what arrives).

/** StoreGcProgress is what a store reports of its GC work (placement keeps the latest in memory, for `flotilla gc status`). */
export interface StoreGcProgress {
  storeId: number;
  /** safePoint: the safe point this store's last finished pass worked to. */
  safePoint: bigint;
  /** regionsDone: Regions this store leads that its GC passes finished at safePoint. */
  regionsDone: number;
  /** versionsRemoved: write records removed since the store started. */
  versionsRemoved: number;
}

/** ServiceSafePointView: a service safe point as status shows it. */
export interface ServiceSafePointView {
  serviceId: string;
  ts: bigint;
  ttlLeftMs: number;
}

/** GcStatus: everything `flotilla gc status` prints. */
export interface GcStatus {
  /** safePoint: the effective safe point stores GC to: min(cluster safe point, live service safe points). */
  safePoint: bigint;
  clusterSafePoint: bigint;
  gcLifeTimeMs: number;
  gcIntervalMs: number;
  services: ServiceSafePointView[];
  stores: (StoreGcProgress & { reportedAgoMs: number })[];
}

export interface GcMethods {
  /**
   * updateServiceSafePoint registers (or moves) the service's safe point:
   * GC keeps every version a read at ts needs until ttlMs from now. ttlMs
   * 0 removes it. A ts below the cluster safe point is refused (accepted
   * false, nothing written): versions below it may already be gone.
   */
  updateServiceSafePoint: { params: { serviceId: string; ts: bigint; ttlMs: number }; result: { accepted: boolean; gcSafePoint: bigint; minServiceSafePoint: bigint | null } };
  /** getGcSafePoint: the effective safe point (committed); a store passes its progress along. */
  getGcSafePoint: { params: { progress?: StoreGcProgress }; result: { safePoint: bigint } };
  getGcStatus: { params: Record<string, never>; result: GcStatus };
}

export type GcMethod = keyof GcMethods;
