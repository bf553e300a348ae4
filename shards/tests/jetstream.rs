//! Receipts over NATS JetStream: a real three-server cluster (the machine's
//! `nats-server`, on free loopback ports, a replicated stream), receipts
//! committed exactly once and in order while a server is killed and
//! restarted, and a forged message refused without stopping its channel;
//! a member's logs mirrored by another through the same (a server killed,
//! the follower restarted), a forged log run refused and a rewritten
//! history caught as a fork.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{lot_on, node, transformation};
use ledger::entry::Entry;
use ledger::store::Store;
use shards::jetstream::{
    encode_run, own_keys, JetStreamConfig, JetStreamInbox, JetStreamTransport, LogPublisher,
    MemberFollower, Relaying, Taken,
};
use shards::mirror::{Applied, LogRun};
use shards::{Node, ReceiptTransport};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A NATS JetStream cluster of this machine's `nats-server`s, stopped (by
/// their own PIDs) when dropped.
struct Cluster {
    dir: PathBuf,
    client: Vec<u16>,
    route: Vec<u16>,
    servers: Vec<Option<Child>>,
}

impl Cluster {
    fn start(dir: &Path, n: usize) -> Cluster {
        let mut c = Cluster {
            dir: dir.to_path_buf(),
            client: (0..n).map(|_| free_port()).collect(),
            route: (0..n).map(|_| free_port()).collect(),
            servers: (0..n).map(|_| None).collect(),
        };
        for i in 0..n {
            c.spawn(i);
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let routes: Vec<String> = self
            .route
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect();
        let log = std::fs::File::create(self.dir.join(format!("nats-{i}.log"))).unwrap();
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.client[i].to_string()])
            .args(["-n", &format!("ct-{i}"), "-js", "-sd"])
            .arg(self.dir.join(format!("js-{i}")))
            .args(["--cluster_name", "coldtrail-test"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", self.route[i])])
            .args(["--routes", &routes.join(",")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("nats-server is installed (.ci/run installs it)");
        self.servers[i] = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.client[i])).is_err() {
            assert!(Instant::now() < deadline, "nats-server {i} did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9.
    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    fn servers(&self) -> String {
        self.client
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            self.kill(i);
        }
    }
}

fn config(cluster: &Cluster) -> JetStreamConfig {
    JetStreamConfig {
        servers: cluster.servers(),
        stream: "COLDTRAIL_RECEIPTS".into(),
        prefix: "coldtrail".into(),
        replicas: 3,
        member: None,
    }
}

/// The transport, once the cluster has elected its leaders.
async fn transport(config: &JetStreamConfig, node: &Node) -> JetStreamTransport {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match JetStreamTransport::connect(config.clone(), own_keys(node)).await {
            Ok(t) => return t,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the cluster: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the cluster never took the stream: {e}"),
        }
    }
}

/// Every receipt each shard committed, per sender, in log order.
fn committed_receipts(node: &Node) -> Vec<((u32, u32), Vec<u64>)> {
    let mut out = std::collections::BTreeMap::new();
    for shard in node.shards() {
        let store = shard.store();
        for i in 0..store.len() {
            if let Ok(Entry::ReceiptIn(d)) = Entry::from_bytes(&store.entry(i).unwrap()) {
                assert!(!d.receipt.subject.contains("FORGED"), "a forgery committed");
                out.entry((d.receipt.from_shard, d.receipt.to_shard))
                    .or_insert_with(Vec::new)
                    .push(d.receipt.channel_seq);
            }
        }
    }
    out.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_cross_a_jetstream_cluster_exactly_once_in_order_while_a_server_dies() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    let config = config(&cluster);
    let node = Arc::new(node(&dir.path().join("node"), 4));
    // Once the cluster has taken the stream.
    drop(transport(&config, &node).await);

    // A forged run first on channel 3 -> 1: the right sequence, another
    // subject (so the proof fails). It is refused and the genuine run
    // behind it commits.
    let lettuce = lot_on(&node, 1, "lettuce");
    let salad = lot_on(&node, 3, "salad");
    node.append(&salad, vec![transformation(0, &[&lettuce], &salad)])
        .await
        .unwrap();
    let mut forged = node.shard(3).unwrap().deliveries(1, 0, 1).await.unwrap();
    forged[0].receipt.subject = "urn:epc:class:lgtin:4012345.012345.FORGED".into();
    let raw = async_nats::connect(format!("nats://127.0.0.1:{}", cluster.client[1]))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(raw);
    js.publish("coldtrail.receipts.1.3", encode_run(&forged).into())
        .await
        .unwrap()
        .await
        .unwrap();
    // And bytes that are no run at all.
    js.publish(
        "coldtrail.receipts.2.0",
        b"\x09\x00\x00\x00junk".to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();

    let relaying = Relaying::spawn(&node, &config, Duration::from_millis(20))
        .await
        .unwrap();

    let lots: Vec<String> = (0..8)
        .map(|i| format!("urn:epc:class:lgtin:4012345.012345.J{i}"))
        .collect();
    for i in 1..=60u64 {
        let (inputs, out) = common::mixing(i, &lots);
        node.append(out, vec![transformation(i, &inputs, out)])
            .await
            .unwrap();
        // A server dies under load, and comes back with its store.
        if i == 20 {
            cluster.kill(0);
        }
        if i == 40 {
            cluster.spawn(0);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    while node.pending_receipts() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} receipts still pending: {:?}",
            node.pending_receipts(),
            committed_receipts(&node)
                .iter()
                .map(|(c, s)| (*c, s.len()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Each channel's receipts committed once each, in order, from 0.
    let committed = committed_receipts(&node);
    assert!(committed.len() >= 6, "{committed:?}");
    for ((from, to), seqs) in &committed {
        let expected: Vec<u64> = (0..node.shard(*from).unwrap().outbox_len(*to)).collect();
        assert_eq!(seqs, &expected, "channel {from} -> {to}");
    }
    // Nothing more arrives later: the stream's copies are all replays.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(committed_receipts(&node), committed);
    relaying.relay.abort();
    for r in relaying.inboxes {
        r.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_restarting_learns_each_channel_from_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    let config = config(&cluster);
    let node = node(&dir.path().join("node"), 4);
    let lettuce = lot_on(&node, 1, "lettuce");
    let salad = lot_on(&node, 3, "salad");
    for i in 0..5 {
        node.append(&salad, vec![transformation(i, &[&lettuce], &salad)])
            .await
            .unwrap();
    }
    let first = transport(&config, &node).await;
    assert_eq!(first.next_expected(3, 1).await.unwrap(), 0);
    assert_eq!(node.relay_once(&first).await.unwrap(), 5);
    drop(first);
    // A new process: it reads where the channel stands, publishes nothing
    // again, and a run published twice is one message in the stream.
    let again = transport(&config, &node).await;
    assert_eq!(again.next_expected(3, 1).await.unwrap(), 5);
    assert_eq!(node.relay_once(&again).await.unwrap(), 0);
    let run = node.shard(3).unwrap().deliveries(1, 0, 5).await.unwrap();
    assert_eq!(again.deliver(run).await.unwrap(), 5);
    let inbox = JetStreamInbox::open(&config, Arc::clone(node.shard(1).unwrap()), own_keys(&node))
        .await
        .unwrap();
    let reader = tokio::spawn(inbox.run());
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.pending_receipts() > 0 {
        assert!(Instant::now() < deadline, "the inbox never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(committed_receipts(&node), vec![((3, 1), (0..5).collect())]);
    reader.abort();

    // What an inbox makes of messages by themselves.
    let inbox = JetStreamInbox::open(&config, Arc::clone(node.shard(1).unwrap()), own_keys(&node))
        .await
        .unwrap();
    let run = node.shard(3).unwrap().deliveries(1, 0, 5).await.unwrap();
    assert_eq!(
        inbox.take(&encode_run(&run)).await.unwrap(),
        Taken::Committed(0)
    );
    assert!(matches!(
        inbox.take(b"\x01").await.unwrap(),
        Taken::Refused(_)
    ));
    for i in [9, 10] {
        node.append(&salad, vec![transformation(i, &[&lettuce], &salad)])
            .await
            .unwrap();
    }
    let sixth = node.shard(3).unwrap().deliveries(1, 5, 6).await.unwrap();
    let seventh = node.shard(3).unwrap().deliveries(1, 6, 7).await.unwrap();
    assert_eq!(
        inbox.take(&encode_run(&seventh)).await.unwrap(),
        Taken::Early
    );
    assert_eq!(
        inbox.take(&encode_run(&sixth)).await.unwrap(),
        Taken::Committed(1)
    );
    assert_eq!(
        inbox.take(&encode_run(&seventh)).await.unwrap(),
        Taken::Committed(1)
    );
}

/// acme's log publisher, once the cluster has taken the stream.
async fn publisher(config: &JetStreamConfig, acme: &Arc<Node>) -> LogPublisher {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match LogPublisher::connect(config.clone(), "acme", Arc::clone(acme)).await {
            Ok(p) => return p,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the cluster: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("the cluster never took the stream: {e}"),
        }
    }
}

/// `node`'s member entry in a network document, as `name`.
fn member(name: &str, node: &Node) -> ledger::network::Member {
    ledger::network::Member {
        name: name.into(),
        operator_key: node.key_sets().last().unwrap().set.operator_key,
        url: "http://127.0.0.1:1".into(),
        prefixes: vec!["4012345".into()],
        shards: node.shards().len() as u32,
    }
}

/// Every entry of each shard of `node`, and each mirror of it, equal, with
/// the mirror's head one of the shard's own.
fn mirrored(node: &Node, follower: &MemberFollower) -> bool {
    node.shards()
        .iter()
        .zip(follower.mirrors())
        .all(|(shard, m)| {
            let store = shard.store();
            m.len() == store.len()
                && m.head().is_some_and(|h| {
                    h.head.size == store.len() && h.head.root == store.root(h.head.size).unwrap()
                })
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_mirrors_another_members_logs_through_a_server_dying_and_its_own_restart_and_a_copy_started_over(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3);
    let config = config(&cluster);
    let acme = Arc::new(node(&dir.path().join("acme"), 2));
    let acme_member = member("acme", &acme);
    let publisher = publisher(&config, &acme).await;
    let publishing = tokio::spawn(publisher.run(Duration::from_millis(20)));
    let mirrors = dir.path().join("bravo-mirrors").join("acme");
    // Opening asks the cluster for the stream: retried while a server is
    // away and the cluster elects.
    let open = || async {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match MemberFollower::open(
                &config,
                "bravo",
                &acme_member,
                &mirrors,
                &ledger::store::Backend::Embedded,
                ledger::store::StoreConfig::default(),
            )
            .await
            {
                Ok(f) => return f,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("opening the mirrors: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("the mirrors never opened: {e}"),
            }
        }
    };
    // A follower owns its mirrors' stores: they are looked at by stopping
    // it and opening them again.
    let mut following = tokio::spawn(open().await.run());
    let lots: Vec<String> = (0..8)
        .map(|i| format!("urn:epc:class:lgtin:4012345.012345.M{i}"))
        .collect();
    for i in 1..=60u64 {
        let (inputs, out) = common::mixing(i, &lots);
        acme.append(out, vec![transformation(i, &inputs, out)])
            .await
            .unwrap();
        if i == 20 {
            cluster.kill(0);
        }
        if i == 30 {
            // The follower stops (its process dies) and starts again.
            following.abort();
            let _ = (&mut following).await;
            let f = open().await;
            following = tokio::spawn(f.run());
        }
        if i == 40 {
            cluster.spawn(0);
        }
    }
    // Caught up: stop the follower, then open its mirrors to look.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        following.abort();
        let _ = (&mut following).await;
        let f = open().await;
        if mirrored(&acme, &f) {
            // And the copies are the logs, entry by entry.
            for (shard, m) in acme.shards().iter().zip(f.mirrors()) {
                let store = shard.store();
                assert_eq!(
                    m.entries(0, m.len()).unwrap(),
                    store.entries(0, store.len()).unwrap()
                );
                assert!(m.fork().is_none());
            }
            break;
        }
        assert!(Instant::now() < deadline, "the mirrors never caught up");
        following = tokio::spawn(f.run());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The mirrors' directory deleted (a copy started over): the follower
    // reads the member's logs from the stream's start again, though its
    // durable consumer had delivered them all.
    std::fs::remove_dir_all(&mirrors).unwrap();
    let mut following = tokio::spawn(open().await.run());
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        following.abort();
        let _ = (&mut following).await;
        let f = open().await;
        if mirrored(&acme, &f) {
            break;
        }
        assert!(Instant::now() < deadline, "the copy never started over");
        following = tokio::spawn(f.run());
    }
    publishing.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_log_run_is_refused_and_a_rewritten_history_is_caught_as_a_fork() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3);
    let config = config(&cluster);
    let acme = Arc::new(node(&dir.path().join("acme"), 1));
    let lot = lot_on(&acme, 0, "forge");
    for i in 0..10 {
        acme.append(&lot, vec![common::observe(i, &lot)])
            .await
            .unwrap();
    }
    let mut publisher = publisher(&config, &acme).await;
    publisher.publish_once().await.unwrap();
    let acme_member = member("acme", &acme);
    let f = MemberFollower::open(
        &config,
        "bravo",
        &acme_member,
        &dir.path().join("mirrors"),
        &ledger::store::Backend::Embedded,
        ledger::store::StoreConfig::default(),
    )
    .await
    .unwrap();
    let store = acme.shard(0).unwrap().store();
    let head = store.latest_head().unwrap();
    let genuine = LogRun {
        low: 0,
        entries: store.entries(0, store.len()).unwrap(),
        head,
        proof: Vec::new(),
    };
    assert_eq!(
        f.take("coldtrail.log.acme.0", &genuine.to_bytes())
            .await
            .unwrap(),
        Applied::Kept(store.len())
    );
    // A stranger's run: an entry that is not acme's, under acme's head.
    let mut forged = genuine.clone();
    forged.entries[4] = common::observe(99, "urn:epc:class:lgtin:4012345.012345.FORGED").to_bytes();
    let err = f
        .take("coldtrail.log.acme.0", &forged.to_bytes())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("entry 4 differs"), "{err}");
    assert!(f.take("coldtrail.log.acme.0", b"junk").await.is_err());
    assert!(f
        .take("coldtrail.log.acme.7", &genuine.to_bytes())
        .await
        .is_err());

    // acme rewrites its log with its own key and signs the new history.
    let shard_key =
        ledger::keys::read_key_file(&dir.path().join("acme/keys/shard-000.key")).unwrap();
    let rewritten = ledger::store::EmbeddedStore::open_or_create(
        &dir.path().join("rewritten"),
        shard_key,
        ledger::store::StoreConfig::default(),
    )
    .unwrap();
    let mut history = store.entries(0, store.len()).unwrap();
    history[2] = common::observe(77, "urn:epc:class:lgtin:4012345.012345.REWRITTEN").to_bytes();
    rewritten.submit(history).unwrap().await.unwrap();
    let second = LogRun {
        low: store.len(),
        entries: Vec::new(),
        head: rewritten.request_head().unwrap().await.unwrap(),
        proof: Vec::new(),
    };
    let Applied::Forked(fork) = f
        .take("coldtrail.log.acme.0", &second.to_bytes())
        .await
        .unwrap()
    else {
        panic!("a second history of the same size is a fork");
    };
    assert_eq!((fork.held, fork.conflicting), (head, second.head));
    assert_eq!(f.mirrors()[0].fork().unwrap().conflicting, second.head);
}
