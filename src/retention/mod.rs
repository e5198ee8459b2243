//! Retention: which snapshots each copy keeps (`forget`), and legal holds.
//!
//! Each copy has its own policy: the primary repository is `local`; destinations go
//! by their names. `[retention.NAME]` in `hcbackup.toml` sets one; otherwise the
//! seed's: local keeps one snapshot per day for `RETENTION_DAYS` (30) days; cloud
//! copies (and any other destination) keep 90 days, then one a month for 12 months
//! and one a year for 20 years (Lei 13.787/2018).

pub mod policy;
pub mod span;

pub use policy::{apply, Candidate, Policy, Verdict};
pub use span::Span;

/// The name of the primary repository in policies and `--destination`.
pub const LOCAL: &str = "local";

/// The seed's policy for a copy named `name`.
pub fn default_policy(name: &str, retention_days: u32) -> Policy {
    if name == LOCAL {
        Policy {
            keep_daily: retention_days,
            ..Default::default()
        }
    } else {
        Policy {
            keep_within: Some(Span {
                days: 90,
                ..Default::default()
            }),
            keep_monthly: 12,
            keep_yearly: 20,
            ..Default::default()
        }
    }
}
