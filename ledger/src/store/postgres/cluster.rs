//! A throwaway PostgreSQL cluster for tests and benchmarks: `initdb` into a
//! temporary directory and `pg_ctl start` on a free port of 127.0.0.1, both
//! from the machine's PostgreSQL server binaries. Stopped and removed on
//! drop; a watchdog process stops it if this process dies first (a test
//! binary never drops its statics).
//!
//! PostgreSQL refuses to run as root: as root, the cluster runs as the
//! `postgres` user (`runuser`), owning its directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::store::StoreError;

pub struct Cluster {
    root: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Runs the server binaries as this user (when we are root).
    user: Option<String>,
    watchdog: Option<Child>,
}

fn fail(what: impl Into<String>) -> StoreError {
    StoreError::Config(format!("throwaway PostgreSQL cluster: {}", what.into()))
}

/// The directory holding `initdb` and `pg_ctl`: `COLDTRAIL_PG_BIN`, else the
/// one `initdb` on the PATH is in, else the newest `/usr/lib/postgresql/*/bin`.
fn server_bin() -> Result<PathBuf, StoreError> {
    if let Some(d) = std::env::var_os("COLDTRAIL_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("pg_ctl").is_file() {
                return Ok(d);
            }
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).ok_or_else(|| {
        fail("no initdb found (install PostgreSQL's server package, or set COLDTRAIL_PG_BIN)")
    })
}

fn is_root() -> bool {
    // The effective uid, from /proc (no libc binding needed).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `(uid, gid)` of `user` from /etc/passwd.
fn ids_of(user: &str) -> Result<(u32, u32), StoreError> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| fail(e.to_string()))?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user))
        .and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))
        .ok_or_else(|| {
            fail(format!(
                "running as root needs a `{user}` user to run PostgreSQL as"
            ))
        })
}

impl Cluster {
    /// Creates and starts a new cluster.
    pub fn start() -> Result<Cluster, StoreError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let bin = server_bin()?;
        let root = std::env::temp_dir().join(format!(
            "coldtrail-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(|e| fail(format!("{}: {e}", root.display())))?;
        let user = is_root().then(|| "postgres".to_string());
        if let Some(u) = &user {
            let (uid, gid) = ids_of(u)?;
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .map_err(|e| fail(format!("chown {}: {e}", root.display())))?;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| fail(format!("finding a free port: {e}")))?
            .port();
        let mut c = Cluster {
            root,
            bin,
            port,
            user,
            watchdog: None,
        };
        c.run(
            "initdb",
            &[
                "-D",
                &c.data().display().to_string(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        c.pg_ctl_start()?;
        c.watchdog = Some(c.spawn_watchdog()?);
        Ok(c)
    }

    /// One cluster for the whole process, started on first use and stopped
    /// by its watchdog when the process ends.
    pub fn shared() -> Result<&'static Cluster, StoreError> {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| Cluster::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| StoreError::Config(e.clone()))
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of database `db` on this cluster.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), StoreError> {
        let out = self
            .command(program)
            .args(args)
            .current_dir(&self.root)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("{program}: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "{program} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    fn pg_ctl_start(&self) -> Result<(), StoreError> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            self.port,
            self.root.display()
        );
        let data = self.data().display().to_string();
        let log = self.root.join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &opts, "-w", "-t", "60", "start",
            ],
        )
    }

    /// Stops the server as a crash would (`immediate`: no checkpoint, the
    /// next start replays the WAL), or cleanly (`fast`).
    pub fn stop(&self, mode: &str) -> Result<(), StoreError> {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", mode, "-w", "stop"])
    }

    pub fn start_again(&self) -> Result<(), StoreError> {
        self.pg_ctl_start()
    }

    /// A process that outlives this one: when this process is gone, it
    /// stops the server and removes the directory.
    fn spawn_watchdog(&self) -> Result<Child, StoreError> {
        let runas = match &self.user {
            Some(u) => format!("runuser -u {u} -- "),
            None => String::new(),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}'{pg_ctl}' -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{root}'",
            pid = std::process::id(),
            pg_ctl = self.bin.join("pg_ctl").display(),
            data = self.data().display(),
            root = self.root.display(),
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| fail(format!("starting the watchdog: {e}")))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A new, empty database for a test: on `COLDTRAIL_TEST_PG` when set (a
/// URL of a server this may create databases on), else on the process's
/// throwaway cluster. Returns its URL.
pub fn fresh_database() -> Result<String, StoreError> {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = match std::env::var("COLDTRAIL_TEST_PG") {
        Ok(u) if !u.is_empty() => u,
        _ => Cluster::shared()?.url("postgres"),
    };
    let name = format!(
        "coldtrail_t{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        crate::clock::Clock::now_ms(&crate::clock::SystemClock) % 1_000_000
    );
    create_database(&base, &name)?;
    Ok(with_dbname(&base, &name))
}

/// `url` with its database name replaced.
pub fn with_dbname(url: &str, db: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let base = match head[scheme_end..].find('/') {
        Some(i) => &head[..scheme_end + i],
        None => head,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// `CREATE DATABASE name` on the server at `url` (from a thread of its own:
/// callable inside or outside an async runtime).
pub fn create_database(url: &str, name: &str) -> Result<(), StoreError> {
    let (url, name) = (url.to_string(), name.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string()))?;
        rt.block_on(async {
            let pg: tokio_postgres::Config =
                url.parse().map_err(|e| fail(format!("{url}: {e}")))?;
            let client = super::connect(&pg).await?;
            client
                .batch_execute(&format!("CREATE DATABASE \"{name}\""))
                .await
                .map_err(|e| super::db_error("creating a test database", e))
        })
    })
    .join()
    .map_err(|_| fail("the thread creating a database panicked"))?
}

#[cfg(test)]
mod tests {
    use super::with_dbname;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(with_dbname("postgres://u@h:5/a", "b"), "postgres://u@h:5/b");
        assert_eq!(with_dbname("postgres://u@h:5", "b"), "postgres://u@h:5/b");
        assert_eq!(
            with_dbname("postgresql://u:p@h/a?sslmode=disable", "b"),
            "postgresql://u:p@h/b?sslmode=disable"
        );
    }
}
