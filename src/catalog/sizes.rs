//! Sizes of what the catalog indexes, for `stats`.

use std::collections::HashMap;

use super::Catalog;
use crate::crypto::Kind;
use crate::error::Result;

/// Each data chunk's size before compression, and sealed.
pub type Sizes = HashMap<[u8; 32], (u64, u64)>;

impl Catalog {
    /// Every data chunk's size before compression and sealed.
    pub fn data_blob_sizes(&self) -> Result<Sizes> {
        self.with(|c| {
            let mut st = c.prepare("SELECT id, raw_length, length FROM blobs WHERE kind = ?1")?;
            let rows = st.query_map([Kind::Data as i64], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = HashMap::new();
            for row in rows {
                let (id, raw, len) = row?;
                if let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) {
                    out.insert(id, (raw as u64, len as u64));
                }
            }
            Ok(out)
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
