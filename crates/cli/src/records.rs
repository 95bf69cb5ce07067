//! The embedded store as `pipeline_report::Records`, streamed row by row so that a store of
//! millions is never held whole (the report, `anomalies --incidents`).

use pipeline_core::store::EventRecord;
use pipeline_report::Records;

use crate::error::CliError;

/// The embedded store, read row by row; rows that do not decode are kept to be reported.
pub struct Streamed<'a> {
    store: &'a pipeline_sqlite::SqliteStore,
    /// Descriptions of the rows that did not decode (first pass only).
    pub unreadable: std::cell::RefCell<Vec<String>>,
}

impl<'a> Streamed<'a> {
    /// Reads `store`.
    pub fn new(store: &'a pipeline_sqlite::SqliteStore) -> Self {
        Streamed {
            store,
            unreadable: std::cell::RefCell::new(Vec::new()),
        }
    }
}

impl Records for Streamed<'_> {
    type Error = CliError;

    fn each_event(
        &self,
        only: Option<&[String]>,
        f: &mut dyn FnMut(&EventRecord),
    ) -> Result<(), CliError> {
        let mut unreadable = self.unreadable.borrow_mut();
        self.store
            .each_event(only, &mut |r| match r {
                Ok(r) => f(&r),
                Err(e) if only.is_none() => unreadable.push(format!("events: {e}")),
                Err(_) => {}
            })
            .map_err(|source| CliError::Db {
                path: "the embedded store".into(),
                source,
            })
    }
}
