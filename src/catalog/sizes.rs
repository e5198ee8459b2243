//! Sizes of what the catalog indexes, for `stats`.

use std::path::Path;

use super::Catalog;
use crate::crypto::Kind;
use crate::error::Result;

impl Catalog {
    /// The sizes (before compression, sealed) of the data chunks listed in
    /// table `keys` of the scratch file `set` (a `BlobSet`), added up: one
    /// query, the set attached for its time.
    pub fn data_sizes_in(&self, set: &Path) -> Result<(u64, u64)> {
        self.with(|c| {
            c.execute("ATTACH DATABASE ?1 AS chunk_set", [set.to_string_lossy()])?;
            let sums = c.query_row(
                "SELECT coalesce(sum(r), 0), coalesce(sum(l), 0) FROM
                   (SELECT max(b.raw_length) AS r, max(b.length) AS l
                    FROM chunk_set.keys k JOIN blobs b ON b.id = k.id AND b.kind = k.kind
                    WHERE k.kind = ?1 GROUP BY k.id)",
                [Kind::Data as i64],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            );
            c.execute("DETACH DATABASE chunk_set", [])?;
            sums
        })
    }

    /// Distinct blobs and their bytes before compression.
    pub fn blob_totals(&self) -> Result<(u64, u64)> {
        self.with(|c| {
            c.query_row(
                "SELECT count(*), coalesce(sum(raw_length), 0) FROM
                   (SELECT kind, id, max(raw_length) AS raw_length FROM blobs GROUP BY kind, id)",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
        })
    }
}
