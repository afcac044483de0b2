// schema: the tables of the log engine's database (format version 1).
//
// entries     one row per raft entry, clustered by (region_id, idx). Rows reach
//             it in bulk when staged writes are folded, so each B-tree page
//             is dirtied once per fold instead of once per write.
// raft_state  one row per Region: hard state, membership, truncated
//             index/term (the dummy entry), and a removed flag kept until
//             purge has deleted the Region's entries.
// staging     one row per committed write not yet folded into entries /
//             raft_state: the encoded LogBatch. A write appends one row at the
//             right edge of one B-tree, so a group commit of many Regions
//             touches a handful of pages and costs about one fsync.

export const LOG_ENGINE_NAME = 'flotilla-log-engine';
export const LOG_FORMAT_VERSION = 1;

export const LOG_SCHEMA = `
CREATE TABLE entries (
  region_id INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  term INTEGER NOT NULL,
  type INTEGER NOT NULL,
  data BLOB NOT NULL,
  context BLOB,
  PRIMARY KEY (region_id, idx)
) WITHOUT ROWID;
CREATE TABLE raft_state (
  region_id INTEGER PRIMARY KEY,
  term INTEGER NOT NULL,
  vote INTEGER NOT NULL,
  commit_index INTEGER NOT NULL,
  truncated_index INTEGER NOT NULL,
  truncated_term INTEGER NOT NULL,
  conf_state BLOB NOT NULL,
  removed INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE staging (
  seq INTEGER PRIMARY KEY,
  body BLOB NOT NULL
);
`;
