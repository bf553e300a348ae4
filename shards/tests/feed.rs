//! The committed-entry feed: a consumer killed at random moments and resumed
//! from its cursor misses nothing and sees nothing twice; a consumer that
//! does not read holds nothing up.

mod common;

use std::sync::Arc;

use common::{node, observe};
use rand::{Rng, SeedableRng};
use shards::feed::Subscription;

/// The consumer's state: every (shard, index) it has processed, in order.
fn push_seen(state: &mut Vec<u8>, shard: u32, index: u64) {
    state.extend_from_slice(&shard.to_le_bytes());
    state.extend_from_slice(&index.to_le_bytes());
}

fn seen(state: &[u8]) -> Vec<(u32, u64)> {
    state
        .chunks_exact(12)
        .map(|c| {
            (
                u32::from_le_bytes(c[..4].try_into().unwrap()),
                u64::from_le_bytes(c[4..].try_into().unwrap()),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_consumer_resumes_missing_nothing_and_repeating_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(node(dir.path(), 3));
    let appender = {
        let node = Arc::clone(&node);
        tokio::spawn(async move {
            for i in 0..300u64 {
                let lot = format!("urn:epc:class:lgtin:4012345.012345.F{}", i % 17);
                node.append(&lot, vec![observe(i, &lot)]).await.unwrap();
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut sub = Subscription::open(Arc::clone(&node), "test-consumer", 7).unwrap();
    let mut kills = 0;
    loop {
        let done = appender.is_finished();
        let Some(batch) = sub.try_next().unwrap() else {
            if done {
                break;
            }
            tokio::time::timeout(std::time::Duration::from_millis(20), sub.wait())
                .await
                .ok();
            continue;
        };
        let mut state = sub.state().to_vec();
        for i in 0..batch.entries.len() as u64 {
            push_seen(&mut state, batch.shard, batch.first_index + i);
        }
        if rng.gen_bool(0.25) {
            // Killed before it could commit: the batch's effects are lost
            // with it, and it is handed out again after the restart.
            drop(sub);
            sub = Subscription::open(Arc::clone(&node), "test-consumer", 7).unwrap();
            kills += 1;
            continue;
        }
        sub.commit(&batch, &state).unwrap();
    }
    appender.await.unwrap();
    // Drain whatever committed after the last look.
    while let Some(batch) = sub.try_next().unwrap() {
        let mut state = sub.state().to_vec();
        for i in 0..batch.entries.len() as u64 {
            push_seen(&mut state, batch.shard, batch.first_index + i);
        }
        sub.commit(&batch, &state).unwrap();
    }
    let sub = Subscription::open(Arc::clone(&node), "test-consumer", 7).unwrap();
    let got = seen(sub.state());
    assert!(kills > 2, "only {kills} kills");
    for shard in node.shards() {
        let mine: Vec<u64> = got
            .iter()
            .filter(|(s, _)| *s == shard.id())
            .map(|(_, i)| *i)
            .collect();
        let want: Vec<u64> = (0..shard.store().len()).collect();
        assert_eq!(
            mine,
            want,
            "shard {}: every entry once, in order",
            shard.id()
        );
    }
    assert_eq!(
        sub.cursors(),
        node.shards()
            .iter()
            .map(|s| s.store().len())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_consumer_that_does_not_read_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(node(dir.path(), 2));
    let idle = Subscription::open(Arc::clone(&node), "idle", 100).unwrap();
    for i in 0..500u64 {
        let lot = format!("lot-{}", i % 9);
        node.append(&lot, vec![observe(i, &lot)]).await.unwrap();
    }
    assert_eq!(idle.cursors(), &[0, 0], "its cursor stays where it was");
    let mut late = Subscription::open(Arc::clone(&node), "idle", 100).unwrap();
    let mut n = 0;
    while let Some(b) = late.try_next().unwrap() {
        n += b.entries.len();
        late.commit(&b, &[]).unwrap();
    }
    assert!(n >= 500, "a late reader catches up from the store: {n}");
}

#[tokio::test]
async fn bad_consumer_names_and_out_of_order_commits_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let node = Arc::new(node(dir.path(), 2));
    assert!(Subscription::open(Arc::clone(&node), "../escape", 10).is_err());
    node.append("lot-a", vec![observe(1, "lot-a")])
        .await
        .unwrap();
    node.append("lot-a", vec![observe(2, "lot-a")])
        .await
        .unwrap();
    let mut sub = Subscription::open(Arc::clone(&node), "c", 1).unwrap();
    let first = sub.try_next().unwrap().unwrap();
    let mut skipped = first.clone();
    skipped.first_index += 1;
    assert!(sub.commit(&skipped, &[]).is_err());
    sub.commit(&first, &[]).unwrap();
}
