//! Starting and stopping: first start, flags over the config file, a second server, SIGTERM
//! and SIGINT.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::support::{http, start, BIN};

#[test]
fn first_start_creates_private_data_and_sigterm_exits_0() {
    let dir = tempfile::tempdir().expect("tmp");
    // No config at all: defaults, with the data dir relative to the working directory.
    let server = start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    assert_eq!(http(&server.addr, "GET", "/readyz", None, None).0, 200);
    let data = dir.path().join("data");
    let dir_mode = std::fs::metadata(&data)
        .expect("data dir")
        .permissions()
        .mode();
    let db_mode = std::fs::metadata(data.join("cloudheed-auth.redb"))
        .expect("db")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(db_mode & 0o777, 0o600);
    let (code, _) = server.terminate();
    assert_eq!(code, 0);
}

#[test]
fn flags_override_the_config_file_and_a_second_server_on_the_same_data_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:1\"\ndata_dir = \"/nonexistent/never\"\n[passwords]\nscrypt_log_n = 10\n")
        .expect("write");
    let data = dir.path().join("mydata");
    let args = [
        "--config",
        cfg.to_str().expect("p"),
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("p"),
    ];
    let server = start(dir.path(), &args, &[]);
    assert!(data.join("cloudheed-auth.redb").exists());
    let second = Command::new(BIN).args(args).output().expect("run");
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("database"), "{second:?}");
    assert_eq!(
        err.matches("cannot open the database").count(),
        1,
        "said once: {err}"
    );
    assert_eq!(
        http(&server.addr, "GET", "/healthz", None, None).0,
        200,
        "the first is unaffected"
    );
    assert_eq!(server.terminate().0, 0);
}

#[test]
fn sigint_stops_the_server_cleanly_too() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut server = start(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &[]);
    let ok = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
}
