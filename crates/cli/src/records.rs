//! Reading a store's records one at a time, for the commands that go through all of them (the
//! report, `anomalies --incidents`): a dump already in memory, or the embedded store streamed
//! row by row so that a store of millions is never held whole.

use pipeline_core::store::{EventRecord, StoreDump};

use crate::error::CliError;

/// Where a report reads its records: every one once for the figures, then those of the
/// entities it draws. One record at a time, so that a store of millions is never held whole.
pub trait Records {
    /// Calls `f` with every record, or with those of `only`.
    fn each_event(
        &self,
        only: Option<&[String]>,
        f: &mut dyn FnMut(&EventRecord),
    ) -> Result<(), CliError>;
}

impl Records for StoreDump {
    fn each_event(
        &self,
        only: Option<&[String]>,
        f: &mut dyn FnMut(&EventRecord),
    ) -> Result<(), CliError> {
        for r in &self.events {
            if only.is_none_or(|ids| ids.contains(&r.entity_id)) {
                f(r);
            }
        }
        Ok(())
    }
}

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
