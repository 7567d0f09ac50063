//! The shared answers of one layer and the budgets they spend.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;

use super::budget::Budget;
use super::cache::Shared;
use super::read::Read;

/// Wrong admin tokens accepted a second before token checks are refused.
const MAX_FAILED_TOKENS_PER_SECOND: u64 = 10;

/// The shared answers of one layer: documents by route and parameters, the
/// health verdict, the exposition (see [`Shared`]).
pub(crate) struct Caches {
    /// The bytes per second documents and the exposition may send.
    pub(super) budget: Arc<Budget>,
    /// Wrong admin tokens a second (10): past them, token checks answer
    /// 429 for a second.
    pub(super) failed_tokens: Budget,
    pub(super) documents: Shared<Read, Result<Bytes, String>>,
    pub(super) health: Shared<(), (StatusCode, Bytes)>,
    #[cfg(feature = "prometheus")]
    pub(super) exposition: Shared<crate::prometheus::Format, Bytes>,
}

impl Caches {
    pub(crate) fn new(fresh_for: Duration, bytes_per_second: Option<u64>) -> Self {
        Caches {
            budget: Arc::new(Budget::new(bytes_per_second)),
            failed_tokens: Budget::new(Some(MAX_FAILED_TOKENS_PER_SECOND)),
            documents: Shared::new(fresh_for),
            health: Shared::new(fresh_for),
            #[cfg(feature = "prometheus")]
            exposition: Shared::new(fresh_for),
        }
    }

    /// Forgets what a mutating route changed.
    pub(super) fn changed(&self) {
        self.documents.clear();
        self.health.clear();
    }
}
