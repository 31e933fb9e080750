//! Inflated blocks kept for history reads: a chart of an agent's containers
//! reads the same blocks once per container (20 reads of the day's 24 one-
//! minute blocks for one agent's dashboard), and inflating them was most of
//! each read. A block is found by its key and checked against a hash of the
//! bytes read from the store, so a block packing has changed since (late
//! rows, the hour's and the day's blocks growing every 10 minutes) is
//! inflated again, never served stale. Bounded by [`MAX_CACHED_BYTES`],
//! oldest out first.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::history::codec::{self, CodecError};

/// Inflated bytes kept (a day of one agent's 1 min blocks is about 0.5 MiB
/// inflated, 30 days of its 15 min blocks about 1 MiB).
pub const MAX_CACHED_BYTES: usize = 16 * 1024 * 1024;

type Key = (String, i64, i64);

/// The cache (one per store, used under the read connection's lock).
#[derive(Default)]
pub struct BlockCache {
    blocks: HashMap<Key, (u64, Arc<Vec<u8>>)>,
    order: VecDeque<Key>,
    bytes: usize,
}

fn hash_of(data: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    h.finish()
}

impl BlockCache {
    /// The inflated bytes of block (`agent`, `res`, `start`) whose packed
    /// bytes are `packed`.
    pub fn raw(
        &mut self,
        agent: &str,
        res: i64,
        start: i64,
        packed: &[u8],
    ) -> Result<Arc<Vec<u8>>, CodecError> {
        let hash = hash_of(packed);
        let key = (agent.to_string(), res, start);
        if let Some((h, raw)) = self.blocks.get(&key) {
            if *h == hash {
                return Ok(raw.clone());
            }
        }
        let raw = Arc::new(codec::unpack(packed)?.into_owned());
        self.insert(key, hash, raw.clone());
        Ok(raw)
    }

    fn insert(&mut self, key: Key, hash: u64, raw: Arc<Vec<u8>>) {
        if raw.len() > MAX_CACHED_BYTES {
            return;
        }
        if let Some((_, old)) = self.blocks.remove(&key) {
            self.bytes -= old.len();
            self.order.retain(|k| k != &key);
        }
        while self.bytes + raw.len() > MAX_CACHED_BYTES {
            let Some(k) = self.order.pop_front() else {
                break;
            };
            if let Some((_, old)) = self.blocks.remove(&k) {
                self.bytes -= old.len();
            }
        }
        self.bytes += raw.len();
        self.order.push_back(key.clone());
        self.blocks.insert(key, (hash, raw));
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::noisy;

    #[test]
    fn a_changed_block_is_inflated_again_and_the_bound_holds() {
        let mut c = BlockCache::default();
        let a = codec::encode(&noisy(2, 10, 0), true);
        let b = codec::encode(&noisy(3, 10, 0), true);
        let first = c.raw("x", 5, 0, &a).unwrap();
        assert!(Arc::ptr_eq(&first, &c.raw("x", 5, 0, &a).unwrap()));
        let changed = c.raw("x", 5, 0, &b).unwrap();
        assert_eq!(codec::decode_raw(&changed, None).unwrap().len(), 30);
        assert_eq!(c.bytes(), changed.len());
        for start in 0..20_000 {
            c.raw("y", 5, start, &a).unwrap();
        }
        assert!(c.bytes() <= MAX_CACHED_BYTES);
        assert_eq!(c.blocks.len(), c.order.len());
    }
}
