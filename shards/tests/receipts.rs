//! Cross-shard receipts: created with their entry, delivered with proof,
//! committed exactly once in order, and every forgery refused.

mod common;

use common::{lot_on, node, observe, transformation};
use ledger::entry::{Entry, ReceiptDelivery};
use shards::{Node, ReceiptError, ShardError};

fn refused(node: &Node, d: ReceiptDelivery, key_from: u32) -> ReceiptError {
    let to = d.receipt.to_shard.min(node.shards().len() as u32 - 1);
    let shard = node.shard(to).unwrap();
    let before = shard.store().len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(shard.accept(d, node.keys().get(key_from as usize).copied()))
        .expect_err("refused");
    assert_eq!(shard.store().len(), before, "nothing refused is committed");
    match err {
        ShardError::Receipt(r) => r,
        other => panic!("not a receipt refusal: {other}"),
    }
}

#[tokio::test]
async fn a_transformation_sends_receipts_to_its_inputs_homes_and_history_follows_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 4);
    let lettuce = lot_on(&node, 1, "lettuce");
    let carrots = lot_on(&node, 2, "carrots");
    let salad = lot_on(&node, 3, "salad");
    node.append(&lettuce, vec![observe(1, &lettuce)])
        .await
        .unwrap();
    let c = node
        .append(
            &salad,
            vec![transformation(2, &[&lettuce, &carrots], &salad)],
        )
        .await
        .unwrap();
    assert_eq!(c.shard, 3);
    let homes: Vec<u32> = c.receipts.iter().map(|r| r.to_shard).collect();
    assert_eq!(homes, vec![1, 2], "one receipt per subject homed elsewhere");
    assert_eq!(node.shard(1).unwrap().outbox_len(3), 0);
    assert_eq!(node.relay_once(&node.local_transport()).await.unwrap(), 2);
    assert_eq!(
        node.relay_once(&node.local_transport()).await.unwrap(),
        0,
        "nothing is delivered twice"
    );
    assert_eq!(node.shard(1).unwrap().inbox_expected(3), 1);

    let history = node.history(&lettuce).await.unwrap();
    assert_eq!(
        history.len(),
        2,
        "observation on its home, then the transformation via receipt"
    );
    assert!(history[0].link.is_none());
    let via = &history[1];
    assert_eq!(via.entry.shard, 3);
    assert!(matches!(
        Entry::from_bytes(&via.entry.bytes).unwrap(),
        Entry::Custody(_)
    ));
    let link = via.link.as_ref().unwrap();
    assert_eq!(link.shard, 1);
    for item in &history {
        item.entry
            .verify(&node.keys()[item.entry.shard as usize])
            .unwrap();
        if let Some(l) = &item.link {
            l.verify(&node.keys()[l.shard as usize]).unwrap();
        }
    }
    // The output lot's own history holds the transformation directly.
    let salad_history = node.history(&salad).await.unwrap();
    assert_eq!(salad_history.len(), 1);
    assert!(salad_history[0].link.is_none());
}

#[tokio::test]
async fn sequencer_state_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (lettuce, salad) = {
        let node = node(dir.path(), 4);
        let lettuce = lot_on(&node, 1, "lettuce");
        let salad = lot_on(&node, 3, "salad");
        for i in 0..3 {
            node.append(&salad, vec![transformation(i, &[&lettuce], &salad)])
                .await
                .unwrap();
        }
        // Deliver only the first receipt, then "crash".
        let d = node
            .shard(3)
            .unwrap()
            .delivery(1, 0)
            .await
            .unwrap()
            .unwrap();
        node.shard(1)
            .unwrap()
            .accept(d, Some(node.keys()[3]))
            .await
            .unwrap();
        (lettuce, salad)
    };
    let node = node(dir.path(), 4);
    assert_eq!(node.shard(3).unwrap().outbox_len(1), 3);
    assert_eq!(node.shard(1).unwrap().inbox_expected(3), 1);
    assert_eq!(node.relay_once(&node.local_transport()).await.unwrap(), 2);
    assert_eq!(node.history(&lettuce).await.unwrap().len(), 3);
    assert_eq!(node.history(&salad).await.unwrap().len(), 3);
}

#[test]
fn forged_receipts_are_refused_and_nothing_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 4);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lettuce = lot_on(&node, 1, "lettuce");
    let salad = lot_on(&node, 3, "salad");
    let (d0, d1) = rt.block_on(async {
        node.append(&salad, vec![transformation(1, &[&lettuce], &salad)])
            .await
            .unwrap();
        node.append(&salad, vec![transformation(2, &[&lettuce], &salad)])
            .await
            .unwrap();
        let s3 = node.shard(3).unwrap();
        (
            s3.delivery(1, 0).await.unwrap().unwrap(),
            s3.delivery(1, 1).await.unwrap().unwrap(),
        )
    });

    // Bad signature on the sender's head.
    let mut bad = d0.clone();
    bad.head.signature[5] ^= 1;
    assert!(matches!(refused(&node, bad, 3), ReceiptError::BadHead(_)));
    // A head signed by another shard's key.
    assert!(matches!(
        refused(&node, d0.clone(), 2),
        ReceiptError::BadHead(_)
    ));
    // A proof for another entry: the receipt's index moved, or its content changed.
    let mut moved = d0.clone();
    moved.receipt_index -= 1;
    assert!(matches!(
        refused(&node, moved, 3),
        ReceiptError::BadProof { .. }
    ));
    let mut altered = d0.clone();
    altered.receipt.subject.push('X');
    assert!(matches!(
        refused(&node, altered, 3),
        ReceiptError::BadProof { .. }
    ));
    let mut swapped_proof = d0.clone();
    swapped_proof.proof = d1.proof.clone();
    assert!(matches!(
        refused(&node, swapped_proof, 3),
        ReceiptError::BadProof { .. }
    ));
    // Wrong channel: addressed elsewhere, or from a shard the node lacks.
    let mut misrouted = d0.clone();
    misrouted.receipt.to_shard = 2;
    assert!(matches!(
        refused(&node, misrouted, 3),
        ReceiptError::Misrouted { to: 2, at: _ } | ReceiptError::BadProof { .. }
    ));
    let mut unknown = d0.clone();
    unknown.receipt.from_shard = 9;
    assert!(matches!(
        refused(&node, unknown, 9),
        ReceiptError::UnknownSender { from: 9 }
    ));
    // Skipped sequence number: receipt 1 before receipt 0.
    assert!(matches!(
        refused(&node, d1.clone(), 3),
        ReceiptError::Skipped {
            got: 1,
            expected: 0,
            ..
        }
    ));
    // The genuine receipt commits once; its replay is refused.
    rt.block_on(
        node.shard(1)
            .unwrap()
            .accept(d0.clone(), Some(node.keys()[3])),
    )
    .unwrap();
    assert!(matches!(
        refused(&node, d0, 3),
        ReceiptError::Replayed {
            got: 0,
            expected: 1,
            ..
        }
    ));
    rt.block_on(node.shard(1).unwrap().accept(d1, Some(node.keys()[3])))
        .unwrap();
    assert_eq!(node.shard(1).unwrap().inbox_expected(3), 2);
}

#[test]
fn a_node_refuses_a_different_shard_count_on_existing_data() {
    let dir = tempfile::tempdir().unwrap();
    drop(node(dir.path(), 3));
    let err = Node::open(common::config(dir.path(), 4))
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .contains("holds 3 shards but 4 were asked for"),
        "{err}"
    );
    let mut same = common::config(dir.path(), 3);
    same.shards = None;
    assert_eq!(Node::open(same).unwrap().shards().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_relay_delivers_everything_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let node = std::sync::Arc::new(node(dir.path(), 4));
    let relay = node.spawn_relay(std::time::Duration::from_millis(50));
    let lots: Vec<String> = (0..8)
        .map(|i| format!("urn:epc:class:lgtin:4012345.012345.R{i}"))
        .collect();
    let mut about: std::collections::HashMap<String, usize> = Default::default();
    for i in 0..40u64 {
        let (inputs, out) = common::mixing(i, &lots);
        for l in inputs.iter().copied().chain([out]) {
            *about.entry(l.to_string()).or_default() += 1;
        }
        node.append(out, vec![transformation(i, &inputs, out)])
            .await
            .unwrap();
    }
    let settled = async {
        loop {
            if node.pending_receipts() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), settled)
        .await
        .expect("the relay settles");
    for lot in &lots {
        assert_eq!(
            node.history(lot).await.unwrap().len(),
            about[lot],
            "{lot}: every event about it, wherever committed"
        );
    }
    relay.abort();
}

#[tokio::test]
async fn a_run_with_one_forgery_commits_nothing_and_replays_in_a_run_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(dir.path(), 4);
    let lettuce = lot_on(&node, 1, "lettuce");
    let salad = lot_on(&node, 3, "salad");
    for i in 0..5 {
        node.append(&salad, vec![transformation(i, &[&lettuce], &salad)])
            .await
            .unwrap();
    }
    let s1 = node.shard(1).unwrap();
    let run = node.shard(3).unwrap().deliveries(1, 0, 5).await.unwrap();
    assert_eq!(run.len(), 5);
    let before = s1.store().len();
    let mut forged = run.clone();
    forged[3].receipt.source_index += 1;
    let err = s1
        .accept_batch(forged, Some(node.keys()[3]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ShardError::Receipt(ReceiptError::BadProof { .. })),
        "{err}"
    );
    assert_eq!(
        s1.store().len(),
        before,
        "nothing of a forged run is committed"
    );
    let first_two = s1
        .accept_batch(run[..2].to_vec(), Some(node.keys()[3]))
        .await
        .unwrap();
    assert_eq!(first_two.committed.entries.len(), 2);
    let rest = s1
        .accept_batch(run.clone(), Some(node.keys()[3]))
        .await
        .unwrap();
    assert_eq!((rest.committed.entries.len(), rest.replayed), (3, 2));
    assert_eq!(s1.inbox_expected(3), 5);
}

/// Everything the sequencers of `node` answer about `lots`: outbox and inbox
/// positions of every channel, and each lot's entries.
fn sequencer_view(node: &Node, lots: &[String]) -> Vec<Vec<u64>> {
    let mut view = Vec::new();
    for shard in node.shards() {
        for other in 0..node.shards().len() as u32 {
            view.push(vec![shard.outbox_len(other), shard.inbox_expected(other)]);
        }
        for lot in lots {
            view.push(shard.entries_about(lot));
        }
    }
    view
}

#[tokio::test]
async fn sequencer_checkpoints_make_open_read_only_the_tail_and_give_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let wait = std::time::Duration::from_secs(10);
    let (lots, at_checkpoint) = {
        let node = common::node(dir.path(), 4);
        let lots: Vec<String> = (0..4).map(|s| lot_on(&node, s, "cp")).collect();
        for i in 0..6 {
            let inputs = [lots[(i % 3) as usize].as_str()];
            node.append(&lots[3], vec![transformation(i, &inputs, &lots[3])])
                .await
                .unwrap();
        }
        node.relay_once(&node.local_transport()).await.unwrap();
        assert_eq!(node.checkpoint(wait).await.unwrap(), 4);
        let at: Vec<u64> = node.shards().iter().map(|s| s.store().len()).collect();
        // A tail after the checkpoint: more entries and receipts, one
        // delivered, the rest still in the outbox.
        for i in 6..9 {
            node.append(&lots[3], vec![transformation(i, &[&lots[1]], &lots[3])])
                .await
                .unwrap();
        }
        node.append(&lots[0], vec![observe(9, &lots[0])])
            .await
            .unwrap();
        let d = node
            .shard(3)
            .unwrap()
            .delivery(1, 2)
            .await
            .unwrap()
            .unwrap();
        node.shard(1)
            .unwrap()
            .accept(d, Some(node.keys()[3]))
            .await
            .unwrap();
        (lots, at)
    };

    let node = common::node(dir.path(), 4);
    let from_checkpoint = sequencer_view(&node, &lots);
    for (shard, at) in node.shards().iter().zip(&at_checkpoint) {
        let opened = shard.opened();
        assert_eq!(opened.entries, shard.store().len());
        assert_eq!(
            opened.scanned,
            opened.entries - at,
            "shard {}: only the tail is read",
            shard.id()
        );
    }
    assert!(
        node.shards().iter().any(|s| s.opened().scanned > 0),
        "the test has a tail"
    );
    drop(node);

    // Without checkpoints: every entry is read, and the state is the same.
    std::fs::remove_dir_all(dir.path().join(shards::checkpoint::DIR)).unwrap();
    let node = common::node(dir.path(), 4);
    for shard in node.shards() {
        assert_eq!(shard.opened().scanned, shard.opened().entries);
    }
    assert_eq!(sequencer_view(&node, &lots), from_checkpoint);
    assert!(node.relay_once(&node.local_transport()).await.unwrap() > 0);
    let after_relay = sequencer_view(&node, &lots);
    assert_eq!(node.checkpoint(wait).await.unwrap(), 4);
    drop(node);

    // A damaged checkpoint is not used: the log is read whole instead.
    let damaged = shards::checkpoint::path(dir.path(), "sequencer-003");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&damaged, &bytes).unwrap();
    let node = common::node(dir.path(), 4);
    let s3 = node.shard(3).unwrap().opened();
    assert_eq!(s3.scanned, s3.entries, "the damaged one is not used");
    assert_eq!(node.shard(1).unwrap().opened().scanned, 0, "the others are");
    assert_eq!(sequencer_view(&node, &lots), after_relay);
}
