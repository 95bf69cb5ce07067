//! Reading the tables: batched gets (with unprocessed keys re-read), single gets, scans and
//! the anomaly index query. Decoding is `item`'s; what reads many items names the ones that do
//! not decode instead of failing on them.

use super::*;

impl DynamoStore {
    /// Reads items of `table` by key: deduplicated, in chunks of 100, chunks concurrently.
    pub(super) async fn batch_get(
        &self,
        table: &str,
        key_attr: &str,
        ids: &[String],
    ) -> Result<Vec<Item>, Error> {
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        // The futures are built first, not in a `map` closure over the stream: a closure there
        // makes the future's type higher-ranked, which `async_trait`'s `Send` check rejects.
        let reads: Vec<_> = unique
            .chunks(BATCH_GET_MAX)
            .map(|chunk| self.batch_get_chunk(table, key_attr, chunk))
            .collect();
        let pages: Vec<Vec<Item>> = stream::iter(reads)
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    async fn batch_get_chunk(
        &self,
        table: &str,
        key_attr: &str,
        ids: &[&String],
    ) -> Result<Vec<Item>, Error> {
        let mut pending: Vec<Item> = ids.iter().map(|id| item::key(key_attr, id)).collect();
        let mut found = Vec::with_capacity(pending.len());
        let mut pauses = unprocessed_backoff().build();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let keys = KeysAndAttributes::builder()
                .set_keys(Some(pending))
                .consistent_read(true)
                .build();
            let keys = keys.map_err(|source| Error::Build {
                what: "BatchGetItem keys",
                source,
            })?;
            self.counters.read();
            let out = self
                .client
                .batch_get_item()
                .request_items(table, keys)
                .send()
                .await
                .map_err(|e| Error::sdk("BatchGetItem", table, e))?;
            if let Some(items) = out.responses.and_then(|mut r| r.remove(table)) {
                found.extend(items);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .map(|k| k.keys)
                .unwrap_or_default();
            if pending.is_empty() {
                return Ok(found);
            }
            match pauses.next() {
                Some(pause) => tokio::time::sleep(pause).await,
                None => {
                    return Err(Error::Unprocessed {
                        table: table.to_owned(),
                        remaining: pending.len(),
                        attempts,
                    });
                }
            }
        }
    }

    pub(super) async fn get_event(&self, event_id: &str) -> Result<Option<EventRecord>, Error> {
        let table = self.tables.events.as_str();
        self.get_item(table, EVENT_KEY, event_id)
            .await?
            .map(|i| item::event_of(table, &i))
            .transpose()
    }

    /// One item by key, strongly consistent.
    pub(super) async fn get_item(
        &self,
        table: &str,
        key_attr: &str,
        id: &str,
    ) -> Result<Option<Item>, Error> {
        self.counters.read();
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(item::key(key_attr, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::sdk("GetItem", table, e))?;
        Ok(out.item)
    }

    /// Every item of a table (`index` for the anomaly index), page by page.
    /// Every item of `table`, decoded with `decode`.
    pub(super) async fn scan_decoded<T>(
        &self,
        table: &str,
        decode: fn(&str, &Item) -> Result<T, Error>,
    ) -> Result<Vec<T>, Error> {
        self.scan_all(table, None, None)
            .await?
            .iter()
            .map(|i| decode(table, i))
            .collect()
    }

    /// Every item of `table` decoded; those that do not decode are named in `unreadable`.
    pub(super) async fn scan_readable<T>(
        &self,
        table: &str,
        decode: fn(&str, &Item) -> Result<T, Error>,
        unreadable: &mut Vec<String>,
    ) -> Result<Vec<T>, Error> {
        let items = self.scan_all(table, None, None).await?;
        Ok(readable(
            table,
            items.iter().map(|i| decode(table, i)),
            unreadable,
        ))
    }

    /// Every item of a table or index, or only those whose string attribute `filter.0` equals
    /// `filter.1` (filtered by DynamoDB, which still reads the whole table: inspection only).
    pub(super) async fn scan_all(
        &self,
        table: &str,
        index: Option<&str>,
        filter: Option<(&str, &str)>,
    ) -> Result<Vec<Item>, Error> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            self.counters.read();
            let mut req = self.client.scan().table_name(table);
            if let Some((attribute, value)) = filter {
                req = req
                    .filter_expression("#f = :f")
                    .expression_attribute_names("#f", attribute)
                    .expression_attribute_values(":f", AttributeValue::S(value.to_owned()));
            }
            let out = req
                .set_index_name(index.map(str::to_owned))
                // Global secondary indexes only support eventually consistent reads.
                .consistent_read(index.is_none())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::sdk("Scan", table, e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// An entity's anomalies from the index, newest first, enough of them to cut at `limit`
    /// exactly: the index orders by `occurred_at` only, so records tied with the last one kept
    /// are all read and then ordered by `event_id`, as the SQLite store orders them.
    pub(super) async fn query_anomalies(
        &self,
        entity_id: &str,
        limit: usize,
    ) -> Result<Vec<Item>, Error> {
        let table = self.tables.events.as_str();
        let mut items: Vec<Item> = Vec::new();
        let mut start: Option<Item> = None;
        let page = i32::try_from(limit.saturating_add(1))
            .unwrap_or(i32::MAX)
            .min(1000);
        loop {
            self.counters.read();
            let out = self
                .client
                .query()
                .table_name(table)
                .index_name(ANOMALY_INDEX)
                .key_condition_expression("#k = :e")
                .expression_attribute_names("#k", ANOMALY_ENTITY)
                .expression_attribute_values(":e", AttributeValue::S(entity_id.to_owned()))
                .scan_index_forward(false)
                .limit(page)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::sdk("Query", table, e))?;
            items.extend(out.items.unwrap_or_default());
            let more = out.last_evaluated_key.filter(|k| !k.is_empty());
            let cut_is_clear = items.len() > limit && {
                let at = |i: usize| {
                    items
                        .get(i)
                        .and_then(|it| item::string(it, item::OCCURRED_AT))
                };
                at(items.len() - 1) != at(limit.saturating_sub(1))
            };
            match more {
                Some(k) if !cut_is_clear => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

/// Newest event time first, then by `event_id` (the SQLite store's order), cut at `limit`.
pub(super) fn newest_first(mut records: Vec<EventRecord>, limit: usize) -> Vec<EventRecord> {
    records.sort_by(|a, b| {
        b.occurred_at
            .cmp(&a.occurred_at)
            .then_with(|| a.event_id.cmp(&b.event_id))
    });
    records.truncate(limit);
    records
}
