//! What the packages rely on: systemd readiness notices, the unit's hardening and the Debian
//! metadata.

use std::process::Command;
use std::time::Duration;

use super::support::{http, start};

#[test]
fn systemd_is_told_when_the_server_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().expect("tmp");
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let socket_env = sock_path.to_str().expect("utf-8").to_string();
    let server = start(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &[("NOTIFY_SOCKET", socket_env.as_str())],
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 arrives");
    assert_eq!(&buf[..n], b"READY=1");
    assert_eq!(
        http(&server.addr, "GET", "/healthz", None, None).0,
        200,
        "ready means serving"
    );
    let (code, _) = server.terminate();
    assert_eq!(code, 0);
    let n = sock.recv(&mut buf).expect("STOPPING=1 arrives");
    assert_eq!(&buf[..n], b"STOPPING=1");
}

#[test]
fn the_systemd_unit_rates_below_2_in_systemd_analyze() {
    let unit = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/systemd/cloudheed-auth.service"
    );
    let text = std::fs::read_to_string(unit).expect("unit");
    for line in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=cloudheed-auth",
        "check-config",
        "/etc/cloudheed-auth/",
    ] {
        assert!(text.contains(line), "{line}");
    }
    let Ok(out) = Command::new("systemd-analyze")
        .args(["security", "--offline=true", unit])
        .output()
    else {
        eprintln!("systemd-analyze is not installed; only the unit's text was checked");
        return;
    };
    let report = String::from_utf8_lossy(&out.stdout);
    let level: f64 = report
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for cloudheed-auth.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {report}"));
    assert!(level < 2.0, "exposure {level}");
}

#[test]
fn every_file_the_debian_package_ships_exists() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest: toml::Table = std::fs::read_to_string(format!("{root}/Cargo.toml"))
        .expect("manifest")
        .parse()
        .expect("toml");
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("assets");
    assert!(assets.len() >= 4);
    for asset in assets {
        let source = asset[0].as_str().expect("source");
        if source != "target/release/cloudheed-auth" {
            assert!(std::path::Path::new(root).join(source).exists(), "{source}");
        }
    }
    let packaged =
        std::fs::read_to_string(format!("{root}/packaging/debian/config.toml")).expect("config");
    cloudheed_auth::Config::from_toml(&packaged).expect("the packaged config is valid");
}

/// What lintian checks of the control fields and the changelog, without building the package.
#[test]
fn the_debian_package_has_a_maintainer_address_a_changelog_and_a_short_synopsis() {
    let root = env!("CARGO_MANIFEST_DIR");
    let manifest: toml::Table = std::fs::read_to_string(format!("{root}/Cargo.toml"))
        .expect("manifest")
        .parse()
        .expect("toml");
    let package = &manifest["package"];
    let deb = &package["metadata"]["deb"];
    let maintainer = deb["maintainer"].as_str().expect("maintainer");
    let (name, address) = maintainer.split_once(" <").expect("Name <address>");
    assert!(!name.trim().is_empty(), "{maintainer}");
    let address = address.strip_suffix('>').expect("closing >");
    assert!(
        address
            .split_once('@')
            .is_some_and(|(l, h)| !l.is_empty() && h.contains('.')),
        "{maintainer}"
    );
    // cargo-deb takes the synopsis from `description`.
    let synopsis = package["description"].as_str().expect("description");
    assert!(synopsis.chars().count() < 80, "{synopsis}");
    assert!(
        !synopsis.contains('\n') && !synopsis.ends_with('.'),
        "{synopsis}"
    );
    assert!(
        !["A ", "An ", "The "]
            .iter()
            .any(|a| synopsis.starts_with(a)),
        "{synopsis}"
    );
    let extended = deb["extended-description"].as_str().expect("extended");
    assert!(
        extended.lines().all(|l| l.chars().count() <= 80),
        "{extended}"
    );
    let path = deb["changelog"].as_str().expect("changelog key");
    let changelog = std::fs::read_to_string(format!("{root}/{path}")).expect("changelog");
    let first = changelog.lines().next().unwrap_or_default();
    let (head, urgency) = first.split_once("; urgency=").expect("; urgency=");
    let version = format!(
        "{} ({}-",
        package["name"].as_str().expect("name"),
        package["version"].as_str().expect("version")
    );
    assert!(head.starts_with(&version), "{first:?} is not for {version}");
    assert!(head.ends_with(") unstable"), "{first:?}");
    assert!(["low", "medium", "high"].contains(&urgency), "{first:?}");
    let trailer = format!(" -- {maintainer}  ");
    assert!(
        changelog.lines().any(|l| l.starts_with(&trailer)),
        "no '{trailer}' line:\n{changelog}"
    );
}
