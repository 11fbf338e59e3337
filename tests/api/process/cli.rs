//! The commands that answer without serving: help, version and check-config.

fn run(args: &[&str]) -> (i32, String, String) {
    super::support::run_cli(None, args)
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for word in ["serve", "check-config", "--config"] {
        assert!(out.contains(word), "{out}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.contains(env!("CARGO_PKG_VERSION")));
    let (code, out, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--listen") && out.contains("--data-dir"));
}

#[test]
fn check_config_accepts_the_example_and_refuses_bad_files_listing_every_problem() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/cloudheed-auth.toml");
    let (code, out, _) = run(&["--config", example, "check-config"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("configuration is valid"));
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "listen = \"x\"\ncolour = 1\n[tokens]\naccess_ttl = \"soon\"\n",
    )
    .expect("write");
    let (code, _, err) = run(&["--config", bad.to_str().expect("path"), "check-config"]);
    assert_eq!(code, 2);
    for key in ["listen", "colour: unknown key", "tokens.access_ttl"] {
        assert!(err.contains(key), "{err}");
    }
    let (code, _, err) = run(&["--config", "/nonexistent/cloudheed.toml", "check-config"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot read"), "{err}");
}
