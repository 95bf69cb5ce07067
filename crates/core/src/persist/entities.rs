//! Entity state, exactly once: the events newly persisted are folded into their entities'
//! state with the same [`observe`] the detect stage uses, one conditional write per entity
//! (see "Entity state, exactly once" in [`super`]).

use std::collections::BTreeMap;

use super::PersistConfig;
use crate::Error;
use crate::detect::{Observation, ScoredEvent, observe};
use crate::store::{EntityWrite, Store};

/// Folds the events decided `Insert` into their entities' state, one conditional write per
/// entity, re-reading and retrying when another writer got there first.
pub(super) async fn absorb_new_events<'a, S: Store + ?Sized>(
    store: &S,
    new_events: impl Iterator<Item = &'a ScoredEvent>,
    cfg: &PersistConfig,
) -> Result<(), Error> {
    let mut by_entity: BTreeMap<&str, Vec<&ScoredEvent>> = BTreeMap::new();
    for e in new_events {
        by_entity
            .entry(e.event.entity_id.as_str())
            .or_default()
            .push(e);
    }
    if by_entity.is_empty() {
        return Ok(());
    }
    for list in by_entity.values_mut() {
        list.sort_by_key(|e| e.event.occurred_ms());
    }
    let ids: Vec<String> = by_entity.keys().map(|k| (*k).to_owned()).collect();
    let mut states = store.get_entities(&ids).await?;
    for (entity, list) in by_entity {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut state = states
                .remove(entity)
                .unwrap_or_else(|| crate::detect::EntityState::new(entity));
            let before = state.recent.clone();
            for ev in &list {
                let obs = Observation::of(&ev.event, ev.enrichment.base_value, &cfg.detect);
                observe(&mut state, &obs, &cfg.detect, true);
            }
            if state.recent == before {
                break; // every event was already absorbed: nothing to write
            }
            state.version += 1;
            match store.put_entity(&state).await? {
                EntityWrite::Written => break,
                EntityWrite::VersionConflict if attempt < cfg.max_entity_attempts => {
                    states = store.get_entities(&[entity.to_owned()]).await?;
                }
                EntityWrite::VersionConflict => {
                    return Err(Error::EntityContended {
                        entity_id: entity.to_owned(),
                        attempts: attempt,
                    });
                }
            }
        }
    }
    Ok(())
}
