//! A private PostgreSQL 15 server for tests that restart the database: its own data directory
//! and loopback port, trust authentication, so restarting it disturbs no other test (the
//! machine's shared server on 5432 is never touched). PostgreSQL refuses to run as root, so as
//! root every `initdb` / `pg_ctl` runs as the `postgres` user (`runuser -u postgres --`).
//! Stopped (immediately) and its directory removed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

/// `PG_BIN` overrides where `initdb` and `pg_ctl` are found.
fn pg_bin(tool: &str) -> PathBuf {
    std::env::var_os("PG_BIN")
        .map_or_else(
            || PathBuf::from("/usr/lib/postgresql/15/bin"),
            PathBuf::from,
        )
        .join(tool)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A server this test started.
#[derive(Debug)]
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    as_root: bool,
    /// Server options beyond the port and socket (TLS).
    options: String,
}

impl PrivatePostgres {
    /// `initdb` in a fresh directory, then starts the server on a free loopback port and waits
    /// until it accepts connections.
    pub async fn start() -> Self {
        Self::start_with_options(String::new(), None).await
    }

    /// As [`PrivatePostgres::start`], with `SOAK_PG_SHARED_BUFFERS` (e.g. `2GB`) as the server's
    /// `shared_buffers` when set, PostgreSQL's default (128 MB) otherwise: to compare a soak
    /// against a server sized like a production one (docs/RELIABILITY.md, "Part four"). With
    /// `SOAK_PG_STATEMENT_STATS=1` the server loads `pg_stat_statements`, so what a soak's
    /// statements cost can be read while it runs (`CREATE EXTENSION pg_stat_statements` in any
    /// of its databases, then the view; a SIGKILL of the server starts the counts afresh).
    pub async fn start_for_load() -> Self {
        let mut options = Vec::new();
        if let Ok(size) = std::env::var("SOAK_PG_SHARED_BUFFERS") {
            assert!(
                !size.is_empty() && size.chars().all(|c| c.is_ascii_alphanumeric()),
                "SOAK_PG_SHARED_BUFFERS={size}: expected a size such as 2GB or 128MB"
            );
            options.push(format!("-c shared_buffers={size}"));
        }
        if std::env::var("SOAK_PG_STATEMENT_STATS").is_ok_and(|v| v == "1") {
            options.push("-c shared_preload_libraries=pg_stat_statements".to_owned());
        }
        Self::start_with_options(options.join(" "), None).await
    }

    /// As [`PrivatePostgres::start`], serving TLS (besides plain connections) with `certs`'
    /// server certificate.
    pub async fn start_with_tls(certs: &super::certs::TestCerts) -> Self {
        let options = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key";
        Self::start_with_options(options.to_owned(), Some(certs)).await
    }

    async fn start_with_options(options: String, certs: Option<&super::certs::TestCerts>) -> Self {
        let port = super::ports::free_port();
        let dir = std::env::temp_dir().join(format!("aigo-pg-{}", uuid::Uuid::new_v4().simple()));
        let server = Self {
            port,
            dir,
            as_root: running_as_root(),
            options,
        };
        server.run(Command::new("mkdir").arg("-p").arg(server.data()));
        let initdb = server.run(
            Command::new(pg_bin("initdb"))
                .arg("-D")
                .arg(server.data())
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]),
        );
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        if let Some(certs) = certs {
            // Copied by the server's own user: PostgreSQL refuses a key others can read.
            for (from, to) in [(certs.cert(), "server.crt"), (certs.key(), "server.key")] {
                let copied = server.run(Command::new("cp").arg(from).arg(server.data().join(to)));
                assert!(copied.status.success(), "copying {to}");
            }
            let key = server.data().join("server.key");
            let chmod = server.run(Command::new("chmod").arg("600").arg(key));
            assert!(chmod.status.success(), "chmod server.key");
        }
        server.start_server().await;
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`: the admin URL (creates databases).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// A crash and a recovery: `pg_ctl stop -m immediate` (every backend killed, no checkpoint,
    /// every client connection broken), then a start with crash recovery. Returns when it
    /// accepts connections again.
    pub async fn restart_immediate(&self) {
        self.stop_immediate();
        self.start_server().await;
    }

    /// `pg_ctl stop -m immediate`: clients see their connections broken at once.
    pub fn stop_immediate(&self) {
        let stopped = self.run(
            Command::new(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"]),
        );
        assert!(
            stopped.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&stopped.stderr)
        );
    }

    /// SIGKILL to the postmaster and every backend at once (a machine losing the server, not a
    /// shutdown of any kind); returns once none of them is left, so the server can start again
    /// (with crash recovery).
    pub async fn kill_server(&self) {
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("postmaster.pid of a running server");
        let postmaster = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .expect("the postmaster's pid on postmaster.pid's first line");
        // Its children first found, then everything killed: orphaned backends would otherwise
        // be out of reach of `pgrep -P` and keep the shared memory the restart needs.
        let children = Command::new("pgrep")
            .args(["-P", &postmaster.to_string()])
            .output()
            .expect("running pgrep");
        let mut pids = vec![postmaster];
        pids.extend(
            String::from_utf8_lossy(&children.stdout)
                .lines()
                .filter_map(|l| l.trim().parse::<u32>().ok()),
        );
        for pid in &pids {
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &pid.to_string()])
                .status();
        }
        super::wait_until("every process of the killed PostgreSQL is gone", || {
            let alive: Vec<u32> = pids
                .iter()
                .copied()
                .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
                .collect();
            async move {
                if alive.is_empty() {
                    Ok(())
                } else {
                    Err(format!("still alive: {alive:?}"))
                }
            }
        })
        .await;
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub async fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 {}",
            self.port,
            self.dir.display(),
            self.options
        );
        let started = self.run(
            Command::new(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.log())
                .args(["-o", &options, "-w", "-t", "60", "start"]),
        );
        assert!(
            started.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&started.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
        let url = self.url();
        let url = url.as_str();
        super::wait_until(
            "the private PostgreSQL accepts connections",
            || async move {
                let connection = PgConnection::connect(url)
                    .await
                    .map_err(|e| e.to_string())?;
                let _ = connection.close().await;
                Ok(())
            },
        )
        .await;
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Runs `command` (as `postgres` when the test runs as root).
    fn run(&self, command: &mut Command) -> Output {
        let output = if self.as_root {
            let mut wrapped = Command::new("runuser");
            wrapped
                .args(["-u", "postgres", "--"])
                .arg(command.get_program())
                .args(command.get_args());
            wrapped.output()
        } else {
            command.output()
        };
        output.unwrap_or_else(|e| panic!("running {:?}: {e}", command.get_program()))
    }

    fn remove(dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.run(
            Command::new(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "20", "stop"]),
        );
        // Give the postmaster a moment to remove its socket and lock files.
        std::thread::sleep(Duration::from_millis(100));
        if std::env::var_os("KEEP_PG_DIR").is_some() || std::thread::panicking() {
            eprintln!(
                "[postgres] private server's files kept in {}",
                self.dir.display()
            );
        } else {
            Self::remove(&self.dir);
        }
    }
}
