//! Request and capacity counters of a [`crate::DynamoStore`], for cost benchmarks.
//!
//! Every write asks DynamoDB for `ReturnConsumedCapacity: TOTAL` and adds what comes back to
//! [`StoreMetrics::write_capacity_units`]. Because emulators do not bill (moto reports a flat
//! 1.0 per write whatever the item size), the store also computes what DynamoDB would bill
//! from the item sizes (one WCU per started KB; a failed condition bills the existing item)
//! into [`StoreMetrics::estimated_write_capacity_units`]. Against real DynamoDB the two agree,
//! except that a replacement is billed on the larger of the old and new item, which the
//! estimate does not know.

use std::sync::{Mutex, MutexGuard};

use crate::item::{self, Item};

/// Counts of one table's writes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TableWrites {
    /// Items sent (one per `PutItem`, one per item of a `TransactWriteItems`), failed
    /// conditions included; SDK retries of one request are not counted again.
    pub requests: u64,
    /// Write capacity units the service reported.
    pub capacity_units: f64,
    /// Write capacity units computed from item sizes.
    pub estimated_capacity_units: u64,
    /// Bytes of the items written (DynamoDB's item size), failed conditions not included.
    pub item_bytes: u64,
}

/// What a store has sent so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreMetrics {
    /// Write requests to all tables.
    pub write_requests: u64,
    /// Write capacity units the service reported, all tables.
    pub write_capacity_units: f64,
    /// Write capacity units computed from item sizes, all tables.
    pub estimated_write_capacity_units: u64,
    /// Read requests (`BatchGetItem`, `GetItem`, `Query`, `Scan`, pages counted one by one).
    pub read_requests: u64,
    /// Writes to the events table.
    pub events: TableWrites,
    /// Writes to the entities table.
    pub entities: TableWrites,
    /// Writes to the quarantine table.
    pub quarantine: TableWrites,
}

/// Which table a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Events,
    Entities,
    Quarantine,
}

impl StoreMetrics {
    fn table(&mut self, table: Table) -> &mut TableWrites {
        match table {
            Table::Events => &mut self.events,
            Table::Entities => &mut self.entities,
            Table::Quarantine => &mut self.quarantine,
        }
    }
}

/// The store's counters.
// A std mutex, not atomics: the capacity is a float, and every critical section is a few
// additions that never await.
#[derive(Debug, Default)]
pub(crate) struct Counters(Mutex<StoreMetrics>);

impl Counters {
    fn lock(&self) -> MutexGuard<'_, StoreMetrics> {
        // Counters stay usable even if a panic elsewhere poisoned the lock.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a write that stored an item of `size` bytes.
    pub(crate) fn written(&self, table: Table, reported: Option<f64>, size: usize) {
        self.add(table, reported, item::write_units(size), size);
    }

    /// Adds a write whose condition failed: DynamoDB still bills it, by the size of the item
    /// that is there (`existing`, when the response returned it), one unit at least.
    pub(crate) fn failed(&self, table: Table, existing: Option<&Item>) {
        self.add(
            table,
            None,
            existing.map_or(1, |i| item::write_units(item::item_size(i))),
            0,
        );
    }

    fn add(&self, table: Table, reported: Option<f64>, estimated: u64, size: usize) {
        let mut m = self.lock();
        let reported = reported.unwrap_or(0.0);
        m.write_requests += 1;
        m.write_capacity_units += reported;
        m.estimated_write_capacity_units += estimated;
        let t = m.table(table);
        t.requests += 1;
        t.capacity_units += reported;
        t.estimated_capacity_units += estimated;
        t.item_bytes += size as u64;
    }

    /// Adds one `TransactWriteItems` that wrote `items` (table, item size): one request;
    /// each item counted against its table, at the transactional price (twice a `PutItem`'s
    /// units). `reported` is the service's consumed capacity per table, when it sent it.
    pub(crate) fn transaction(&self, items: &[(Table, usize)], reported: &[(Table, f64)]) {
        let mut m = self.lock();
        m.write_requests += 1;
        for (table, size) in items {
            let estimated = 2 * item::write_units(*size);
            m.estimated_write_capacity_units += estimated;
            let t = m.table(*table);
            t.requests += 1;
            t.estimated_capacity_units += estimated;
            t.item_bytes += *size as u64;
        }
        for (table, units) in reported {
            m.write_capacity_units += units;
            m.table(*table).capacity_units += units;
        }
    }

    /// Adds a cancelled `TransactWriteItems` of `items` items: one request, billed by DynamoDB
    /// for each item it checked (estimated at one transactional unit each, 2 WCU).
    pub(crate) fn transaction_cancelled(&self, items: usize) {
        let mut m = self.lock();
        m.write_requests += 1;
        m.estimated_write_capacity_units += 2 * items as u64;
    }

    /// Adds one read request.
    pub(crate) fn read(&self) {
        self.lock().read_requests += 1;
    }

    /// A copy of the counters.
    pub(crate) fn snapshot(&self) -> StoreMetrics {
        *self.lock()
    }

    /// Sets every counter back to zero.
    pub(crate) fn reset(&self) {
        *self.lock() = StoreMetrics::default();
    }
}
