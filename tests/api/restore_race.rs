//! Restore, run as root, changes nothing outside the data dir, whatever the dir's owner plants in it.

use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use cloudheed_auth::admin::restore;
use cloudheed_auth::Config;

use crate::helpers::TestApp;

/// The staging name restore used before it took a fresh one each time.
const OLD_STAGING: &str = "cloudheed-auth.redb.restoring";

/// Everything an attack through a planted name could change (content, mode, owner), one line a
/// file so that a failure reads well.
fn states(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .map(|f| {
            let m = std::fs::symlink_metadata(f).expect("stat");
            let content = std::fs::read(f).expect("read");
            let mut hash = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&content, &mut hash);
            format!(
                "{}: {} bytes ({:016x}), mode {:o}, owner {}:{}",
                f.display(),
                content.len(),
                std::hash::Hasher::finish(&hash),
                m.mode(),
                m.uid(),
                m.gid()
            )
        })
        .collect()
}

fn assert_restored(data: &Path) {
    let dir = std::fs::metadata(data).expect("data dir");
    let db = std::fs::symlink_metadata(data.join(Config::DB_FILE)).expect("database");
    assert!(db.is_file(), "the database is a file of its own");
    assert_eq!(db.mode() & 0o7777, 0o600);
    assert_eq!(
        (db.uid(), db.gid()),
        (dir.uid(), dir.gid()),
        "the dir's owner has it"
    );
    cloudheed_auth::testing::store::check_backup(&data.join(Config::DB_FILE))
        .expect("the backup's data");
}

#[tokio::test]
async fn planted_symlinks_and_links_redirect_nothing_outside_the_data_dir() {
    if !crate::helpers::on_redb("planted_symlinks_and_links_redirect_nothing_outside_the_data_dir")
    {
        return;
    }
    let source = TestApp::spawn().await;
    source.stop().await;
    let root = tempfile::tempdir().expect("tmp");
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).expect("mkdir");
    let backup = outside.join("backup.redb");
    std::fs::copy(source.db_path(), &backup).expect("backup");
    let targets: Vec<PathBuf> = ["db", "staging", "socket"]
        .iter()
        .map(|name| {
            let t = outside.join(name);
            std::fs::write(&t, format!("root's own {name} file")).expect("write");
            std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            t
        })
        .collect();
    let before = states(&targets);
    let data = root.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    // As root (CI runs so), the dir belongs to someone else, as under systemd's DynamicUser: a
    // chown that goes astray then shows on the target.
    let _ = std::os::unix::fs::chown(&data, Some(65534), Some(65534));
    let config =
        Config::from_toml(&format!("data_dir = {:?}\n", data.display().to_string())).expect("cfg");

    let db = data.join(Config::DB_FILE);
    symlink(&targets[0], &db).expect("plant");
    symlink(&targets[1], data.join(OLD_STAGING)).expect("plant");
    symlink(&targets[2], data.join(cloudheed_auth::admin::SOCKET)).expect("plant");
    let refused = restore(&config, &backup, true);
    assert!(refused.is_err(), "a symlink as the database is refused");
    assert_eq!(states(&targets), before);
    assert!(db.is_symlink(), "and left as it was");

    std::fs::remove_file(&db).expect("rm");
    std::fs::hard_link(&targets[0], &db).expect("plant");
    assert!(
        restore(&config, &backup, true).is_err(),
        "so is a second name of another file"
    );
    assert_eq!(states(&targets), before);

    std::fs::remove_file(&db).expect("rm");
    restore(&config, &backup, true).expect("restore beside the planted symlinks");
    assert_eq!(states(&targets), before);
    assert_restored(&data);

    // The data dir's owner swaps a symlink in at every other name it sees, as fast as it can.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = symlink(&targets[1], data.join(OLD_STAGING));
                for entry in std::fs::read_dir(&data).into_iter().flatten().flatten() {
                    let ours = entry.file_type().is_ok_and(|t| !t.is_symlink());
                    if ours && entry.file_name() != Config::DB_FILE {
                        let _ = std::fs::remove_file(entry.path());
                        let _ = symlink(&targets[1], entry.path());
                    }
                }
            }
        });
        let rounds = std::panic::catch_unwind(|| {
            for _ in 0..100 {
                let result = restore(&config, &backup, true);
                assert_eq!(
                    states(&targets),
                    before,
                    "a file outside the data dir changed"
                );
                match result {
                    Ok(()) => assert_restored(&data),
                    // A swap that moved a symlink into the database's place was caught; clear
                    // it so the next round starts from a database again.
                    Err(_) if db.is_symlink() => std::fs::remove_file(&db).expect("rm"),
                    Err(_) => {}
                }
            }
        });
        // Else the scope would wait for the attacker forever.
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = rounds {
            std::panic::resume_unwind(panic);
        }
    });
}
