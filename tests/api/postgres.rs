//! A real PostgreSQL for the tests (Debian's `postgresql` package): one server per test binary,
//! started from a temp dir with `initdb`/`pg_ctl` on the first use and stopped by a watchdog once
//! this process has gone; each server under test gets a schema of its own.
//!
//! `CLOUDHEED_TEST_BACKEND=postgres cargo test --test api` runs every black-box test on it
//! (`.ci/run` does); the tests of several instances use it in every run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The running server: its port, data dir and binaries.
#[derive(Debug)]
pub struct PgServer {
    pub port: u16,
    pub dir: PathBuf,
    pub bin: PathBuf,
    /// More `-c name=value` settings for the server.
    extra: String,
}

static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();

/// Whether the black-box suite runs on PostgreSQL in this run.
pub fn suite_on_postgres() -> bool {
    std::env::var("CLOUDHEED_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// The binaries of Debian's PostgreSQL, if installed.
fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort();
    found.pop()
}

/// The shared server, started on first use; `None` where PostgreSQL is missing (locally only:
/// under CI, or when the suite was asked to run on PostgreSQL, that fails).
pub fn server() -> Option<&'static PgServer> {
    SERVER
        .get_or_init(|| {
            let Some(bin) = bin_dir() else {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true") && !suite_on_postgres(),
                    "PostgreSQL is not installed; .ci/run installs it"
                );
                eprintln!("skipped: PostgreSQL is not installed (apt-get install postgresql)");
                return None;
            };
            Some(start(bin))
        })
        .as_ref()
}

/// A server of the test's own, for tests that stop and start it; `None` where PostgreSQL is
/// missing (locally only).
pub fn dedicated() -> Option<PgServer> {
    server()?;
    bin_dir().map(start)
}

/// A server of the test's own speaking TLS with a certificate for 127.0.0.1 from a private CA
/// made for it; the CA's PEM file beside it.
pub fn dedicated_with_tls() -> Option<(PgServer, PathBuf)> {
    server()?;
    let bin = bin_dir()?;
    let dir = tempfile::Builder::new()
        .prefix("cloudheed-pg-tls-")
        .tempdir()
        .expect("tmp")
        .keep();
    let sh = |script: &str| {
        let out = Command::new("sh")
            .args(["-c", script])
            .current_dir(&dir)
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -subj /CN=cloudheed-test-ca -days 2 2>/dev/null");
    sh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null");
    sh("printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext 2>/dev/null");
    sh("chmod 600 server.key && chown postgres server.key server.crt");
    let extra = format!(
        "-c ssl=on -c ssl_cert_file={d}/server.crt -c ssl_key_file={d}/server.key",
        d = dir.display()
    );
    let ca = dir.join("ca.crt");
    Some((start_with(bin, extra), ca))
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    c
}

fn start(bin: PathBuf) -> PgServer {
    start_with(bin, String::new())
}

fn start_with(bin: PathBuf, extra: String) -> PgServer {
    let dir = tempfile::Builder::new()
        .prefix("cloudheed-pg-")
        .tempdir()
        .expect("tmp")
        .keep();
    let chown = Command::new("chown")
        .args(["-R", "postgres"])
        .arg(&dir)
        .status()
        .expect("chown");
    assert!(chown.success(), "chown the PostgreSQL dir");
    let data = dir.join("data");
    let out = as_postgres(&bin, "initdb")
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync"])
        .stdout(Stdio::null())
        .output()
        .expect("initdb");
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let server = PgServer {
        port,
        dir,
        bin,
        extra,
    };
    server.pg_ctl_start();
    // Stop it, and remove its files, once this test process is gone.
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         runuser -u postgres -- {ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        ctl = server.bin.join("pg_ctl").display(),
        data = data.display(),
        dir = server.dir.display(),
    );
    // Left running on purpose: it outlives this process to clean up after it.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog");
    server
}

impl PgServer {
    fn pg_ctl_start(&self) {
        let data = self.dir.join("data");
        let out = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(self.dir.join("pg.log"))
            .args(["-w", "-o"])
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=500 -c fsync=off {}",
                self.port,
                self.dir.display(),
                self.extra
            ))
            .arg("start")
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stop the server (as an outage), for readiness tests.
    pub fn stop(&self) {
        let out = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl stop");
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Start it again after `stop`.
    pub fn restart(&self) {
        self.pg_ctl_start();
    }

    /// A fresh, empty schema and the URL that puts a server in it.
    pub fn new_schema(&self) -> String {
        let schema = format!(
            "t_{}",
            cloudheed_auth::testing::crypto::random::id("")
                .to_lowercase()
                .replace('-', "_")
        );
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-q",
                "-c",
            ])
            .arg(format!("CREATE SCHEMA {schema}"))
            .arg("postgres")
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "create schema: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?options=-c%20search_path%3D{schema}",
            self.port
        )
    }
}
