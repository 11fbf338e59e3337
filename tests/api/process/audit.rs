//! The audit CLI against the built binary: list, export, verify (and its exit code on a damaged
//! log), checkpoint, on a running and a stopped server.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use cloudheed_auth::testing::store::{Store, Tamper};
use serde_json::{json, Value};

use super::support::{admin, admin_json, configured, http, start};

const CONFIG: &str = "[passwords]\nscrypt_log_n = 10\n";
const PASSWORD: &str = "audit-password-123";

/// `audit list --json` with `args`, as a vector of entries.
fn listed(config: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["audit", "list", "--limit", "100000"];
    all.extend_from_slice(args);
    admin_json(config, &all)
        .as_array()
        .expect("an array of entries")
        .clone()
}

fn types(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

/// The number N of an entry id "ev-N".
fn seq_of(entry: &Value) -> u64 {
    entry["id"]
        .as_str()
        .and_then(|id| id.strip_prefix("ev-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ev-N id: {entry}"))
}

/// Register `email` over HTTP; returns the answer (token, refresh_token, user).
fn register(addr: &str, email: &str) -> Value {
    let body = json!({"email": email, "password": PASSWORD, "name": "Audit"});
    let (status, v) = http(addr, "POST", "/v1/auth/register", None, Some(&body));
    assert_eq!(status, 201, "{v}");
    v
}

/// Log `email` in with `password`; returns the status.
fn login(addr: &str, email: &str, password: &str) -> u16 {
    let body = json!({"email": email, "password": password});
    http(addr, "POST", "/v1/auth/login", None, Some(&body)).0
}

/// Damage entry `seq` of the stopped server's database in `dir`, as an attacker with write
/// access to the file would.
fn tamper(dir: &Path, seq: u64, how: Tamper) {
    let path = dir.join("data").join("cloudheed-auth.redb");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Store::open(&path).expect("open the stopped server's database");
    rt.block_on(store.tamper_audit(seq, how)).expect("tamper");
    // redb lets one process have the file: let go of it before the CLI opens it.
    drop(store);
}

#[test]
fn users_and_operators_actions_are_listed_filtered_verified_and_exported() {
    let (dir, args) = configured(CONFIG);
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[]);
    let email = "audited@example.com";
    let reg = register(&server.addr, email);
    let user_id = reg["user"]["id"].as_str().expect("user id").to_string();
    assert_eq!(login(&server.addr, email, "not-the-password"), 401);
    assert_eq!(login(&server.addr, email, PASSWORD), 200);
    let token = reg["token"].as_str().expect("token");
    let key_body = json!({"name": "k", "scopes": ["databases:read"]});
    let (status, key) = http(
        &server.addr,
        "POST",
        "/v1/auth/api-keys",
        Some(token),
        Some(&key_body),
    );
    assert_eq!(status, 201, "{key}");

    // The user's own actions, newest first, each with who, from where, and no chain fields.
    let all = listed(&cfg, &[]);
    assert_eq!(
        types(&all),
        [
            "api_key_created",
            "login_succeeded",
            "login_failed",
            "register"
        ],
        "{all:?}"
    );
    let seqs: Vec<u64> = all.iter().map(seq_of).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );
    for e in &all {
        assert_eq!(e["user_id"], user_id.as_str(), "{e}");
        assert_eq!(e["actor"], "user", "{e}");
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert!(e["at"].is_string(), "{e}");
        for chain in ["seq", "prev", "hash"] {
            assert!(e.get(chain).is_none(), "a listing has no {chain}: {e}");
        }
    }
    assert_eq!(all[2]["detail"]["reason"], "wrong_password", "{}", all[2]);
    assert_eq!(all[3]["detail"]["email"], email, "{}", all[3]);

    // Filters: by account and type, and by time (an age or an RFC 3339 time).
    let failed = listed(&cfg, &["--user", email, "--type", "login_failed"]);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0], all[2]);
    assert_eq!(
        listed(&cfg, &["--user", "AUDITED@example.com"]).len(),
        4,
        "emails match without case"
    );
    assert_eq!(listed(&cfg, &["--since", "1h"]), all);
    assert!(listed(&cfg, &["--since", "2999-01-01T00:00:00Z"]).is_empty());
    let newest_two = admin_json(&cfg, &["audit", "list", "--limit", "2"]);
    assert_eq!(newest_two, json!(all[..2]), "--limit keeps the newest");
    let (code, _, err) = admin(&cfg, &["audit", "list", "--type", "nope"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("\"nope\"")
            && err.contains("register")
            && err.contains("login_failed")
            && err.contains("restored"),
        "names the known types: {err}"
    );
    let (code, _, err) = admin(&cfg, &["audit", "list", "--since", "yesterday-ish"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--since"), "{err}");

    // An operator's actions through the CLI, each recorded as the admin's.
    admin_json(&cfg, &["user", "disable", email]);
    admin_json(&cfg, &["user", "enable", email]);
    admin_json(&cfg, &["user", "set-plan", email, "pro"]);
    let keys = admin_json(&cfg, &["keys", "rotate"]);
    let new_kid = keys
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["signing"] == true)
        .expect("a signing key")["kid"]
        .as_str()
        .expect("kid")
        .to_string();
    let backup = dir.path().join("audit-backup.redb");
    let backup = backup.to_str().expect("utf-8 path");
    admin_json(&cfg, &["backup", backup]);
    let all = listed(&cfg, &[]);
    assert_eq!(
        types(&all[..5]),
        [
            "backup_taken",
            "signing_key_rotated",
            "plan_changed",
            "account_enabled",
            "account_disabled"
        ],
        "{all:?}"
    );
    for e in &all[..5] {
        assert_eq!(e["actor"], "admin", "{e}");
        assert!(e["ip"].is_null(), "no client address for the CLI: {e}");
    }
    for e in &all[2..5] {
        assert_eq!(e["user_id"], user_id.as_str(), "{e}");
    }
    assert_eq!(all[0]["detail"]["to"], backup, "{}", all[0]);
    assert_eq!(all[1]["detail"]["kid"], new_kid.as_str(), "{}", all[1]);
    assert_eq!(
        (&all[2]["detail"]["from"], &all[2]["detail"]["to"]),
        (&json!("free"), &json!("pro")),
        "{}",
        all[2]
    );
    let disabled = listed(&cfg, &["--type", "account_disabled", "--user", email]);
    assert_eq!(disabled, all[4..5]);

    // The chain holds, over every entry.
    let verified = admin_json(&cfg, &["audit", "verify"]);
    assert_eq!(verified["verified"], all.len() as u64, "{verified}");
    assert_eq!(verified["head"], all[0]["id"], "{verified}");
    assert_eq!(verified["pruned"], 0, "{verified}");
    assert!(verified.get("checkpoint").is_none(), "{verified}");
    let (code, out, err) = admin(&cfg, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.trim().is_empty(), "says something without --json too");

    // The export: every entry oldest first with its links, for a file only its owner reads.
    let out = dir.path().join("audit.jsonl");
    let out = out.to_str().expect("utf-8 path");
    let (code, _, err) = admin(&cfg, &["audit", "export", "--jsonl", out]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(out).expect("the export");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), all.len(), "{text}");
    for pair in lines.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(
            a["seq"].as_u64().expect("seq") < b["seq"].as_u64().expect("seq"),
            "oldest first: {a} then {b}"
        );
        assert_eq!(b["prev"], a["hash"], "{b} links to {a}");
    }
    for line in &lines {
        let hash = line["hash"].as_str().expect("hash");
        assert_eq!(hash.len(), 64, "{line}");
        assert_eq!(seq_of(line), line["seq"].as_u64().expect("seq"), "{line}");
    }
    let newest_first: Vec<Value> = lines
        .iter()
        .rev()
        .map(|l| {
            let mut l = l.clone();
            let o = l.as_object_mut().expect("object");
            for k in ["seq", "prev", "hash"] {
                o.remove(k);
            }
            l
        })
        .collect();
    assert_eq!(newest_first, all, "the same entries as the listing");
    let mode = std::fs::metadata(out).expect("export").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (code, _, err) = admin(&cfg, &["audit", "export", "--jsonl", out]);
    assert_eq!(code, 1, "never overwrites: {err}");
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out).expect("export"),
        text,
        "left as it was"
    );
    assert_eq!(server.terminate().0, 0);

    // Stopped: the CLI reads the database itself, and finds the same log.
    assert_eq!(listed(&cfg, &[]), all);
    let stopped = admin_json(&cfg, &["audit", "verify"]);
    assert_eq!(stopped["verified"], all.len() as u64, "{stopped}");
    assert_eq!(stopped["head_hash"], verified["head_hash"], "{stopped}");
    // A stopped server's backup records where it went too.
    let offline = dir.path().join("offline-backup.redb");
    let offline = offline.to_str().expect("utf-8 path");
    admin_json(&cfg, &["backup", offline]);
    let newest = admin_json(&cfg, &["audit", "list", "--limit", "1"]);
    assert_eq!(newest[0]["type"], "backup_taken", "{newest}");
    assert_eq!(newest[0]["actor"], "admin", "{newest}");
    assert_eq!(newest[0]["detail"]["to"], offline, "{newest}");
}

#[test]
fn a_damaged_log_fails_verify_naming_the_first_broken_entry() {
    for (how, at) in [
        (Tamper::Edit, "ev-3"),
        (Tamper::Delete, "ev-3"),
        (Tamper::SwapWithNext, "ev-2"),
    ] {
        let (dir, args) = configured(CONFIG);
        let cfg = args[1].clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = start(dir.path(), &args, &[]);
        let email = "tampered@example.com";
        register(&server.addr, email);
        assert_eq!(login(&server.addr, email, "not-the-password"), 401);
        assert_eq!(login(&server.addr, email, PASSWORD), 200);
        assert_eq!(server.terminate().0, 0);
        let intact = admin_json(&cfg, &["audit", "verify"]);
        assert_eq!(intact["verified"], 3, "{how:?}: {intact}");

        tamper(dir.path(), 2, how);
        let (code, out, err) = admin(&cfg, &["audit", "verify"]);
        assert_eq!(code, 1, "{how:?}: {out}{err}");
        assert!(
            err.starts_with(&format!(
                "cloudheed-auth: the audit log is broken at entry {at}: "
            )),
            "{how:?}: {err}"
        );
        assert!(out.is_empty(), "{how:?}: nothing on stdout: {out}");
        let (code, out, err) = admin(&cfg, &["audit", "verify", "--json"]);
        assert_eq!(code, 1, "{how:?} with --json: {out}{err}");
        assert!(err.contains(&format!("entry {at}:")), "{how:?}: {err}");
        // A checkpoint is never signed over a broken log.
        let (code, out, err) = admin(&cfg, &["audit", "checkpoint"]);
        assert_eq!(code, 1, "{how:?}: {out}{err}");
        assert!(err.contains(&format!("entry {at}:")), "{how:?}: {err}");
    }
}

#[test]
fn a_checkpoint_shows_a_rewrite_that_relinked_the_chain() {
    let (dir, args) = configured(CONFIG);
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[]);
    let email = "checkpointed@example.com";
    let reg = register(&server.addr, email);
    assert_eq!(login(&server.addr, email, "not-the-password"), 401);
    assert_eq!(login(&server.addr, email, PASSWORD), 200);

    let (code, printed, err) = admin(&cfg, &["audit", "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    let cp: Value = serde_json::from_str(&printed).expect("a checkpoint is JSON");
    assert_eq!(cp["seq"], 3, "{cp}");
    assert_eq!(cp["format"], "cloudheed-auth audit checkpoint v1", "{cp}");
    for k in ["hash", "kid", "public_key", "signature"] {
        assert!(cp[k].is_string(), "{k}: {cp}");
    }
    let cp_file = dir.path().join("checkpoint.json");
    std::fs::write(&cp_file, &printed).expect("save the checkpoint");
    let cp_file = cp_file.to_str().expect("utf-8 path");

    // More happens after it; the log up to it is unchanged.
    assert_eq!(login(&server.addr, email, PASSWORD), 200);
    let token = reg["token"].as_str().expect("token");
    let key_body = json!({"name": "k", "scopes": ["databases:read"]});
    let (status, _) = http(
        &server.addr,
        "POST",
        "/v1/auth/api-keys",
        Some(token),
        Some(&key_body),
    );
    assert_eq!(status, 201);
    let checked = admin_json(&cfg, &["audit", "verify", "--checkpoint", cp_file]);
    assert_eq!(checked["verified"], 5, "{checked}");
    assert_eq!(checked["checkpoint"], "ev-3 matches", "{checked}");

    // A checkpoint whose signature was altered proves nothing.
    let mut forged = cp.clone();
    let signature = cp["signature"].as_str().expect("signature");
    let first = if signature.starts_with('A') { "B" } else { "A" };
    forged["signature"] = json!(format!("{first}{}", &signature[1..]));
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).expect("write");
    let forged_file = forged_file.to_str().expect("utf-8 path");
    let (code, out, err) = admin(&cfg, &["audit", "verify", "--checkpoint", forged_file]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("signature"), "{err}");
    // Nor does one that is not JSON, or one that is missing.
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "not json").expect("write");
    let (code, _, err) = admin(
        &cfg,
        &[
            "audit",
            "verify",
            "--checkpoint",
            junk.to_str().expect("path"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    let missing = dir.path().join("missing.json");
    let (code, _, err) = admin(
        &cfg,
        &[
            "audit",
            "verify",
            "--checkpoint",
            missing.to_str().expect("path"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot read the checkpoint"), "{err}");
    assert_eq!(server.terminate().0, 0);

    // Stopped, then rewritten before the checkpoint by someone who re-links every later entry:
    // the chain alone holds, the checkpoint does not.
    let (code, _, err) = admin(&cfg, &["audit", "verify", "--checkpoint", cp_file]);
    assert_eq!(code, 0, "stopped, untouched: {err}");
    tamper(dir.path(), 2, Tamper::Rewrite);
    let relinked = admin_json(&cfg, &["audit", "verify"]);
    assert_eq!(relinked["verified"], 5, "{relinked}");
    let (code, out, err) = admin(&cfg, &["audit", "verify", "--checkpoint", cp_file]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("differs from the checkpoint"), "{err}");
    assert!(err.contains("ev-3"), "{err}");
    let (code, _, err) = admin(&cfg, &["audit", "verify", "--checkpoint", forged_file]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("signature"), "{err}");
}

#[test]
fn a_restore_is_the_first_entry_the_restored_log_gains() {
    let (dir, args) = configured(CONFIG);
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[]);
    register(&server.addr, "restored@example.com");
    let backup = dir.path().join("snapshot.redb");
    let backup = backup.to_str().expect("utf-8 path");
    let (code, _, err) = admin(&cfg, &["backup", backup]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(server.terminate().0, 0);

    let (dir2, args2) = configured(CONFIG);
    let cfg2 = args2[1].clone();
    let (code, _, err) = admin(&cfg2, &["restore", backup]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("warning"), "{err}");
    let restored = listed(&cfg2, &["--type", "restored"]);
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0]["actor"], "admin", "{}", restored[0]);
    assert_eq!(restored[0]["detail"]["from"], backup, "{}", restored[0]);
    // The backup holds the log as it was (not its own record); the restore links on to it.
    let all = listed(&cfg2, &[]);
    assert_eq!(types(&all), ["restored", "register"], "{all:?}");
    let verified = admin_json(&cfg2, &["audit", "verify"]);
    assert_eq!(verified["verified"], 2, "{verified}");
    let (code, _, err) = admin(&cfg2, &["audit", "verify"]);
    assert_eq!(code, 0, "{err}");
    drop(dir2);
}

#[test]
fn prune_drops_entries_past_retention_and_the_rest_still_verifies() {
    let (dir, args) = configured(&format!("{CONFIG}[audit]\nretention = \"1s\"\n"));
    let cfg = args[1].clone();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(dir.path(), &args, &[]);
    register(&server.addr, "old@example.com");
    // Entry times are whole seconds: two seconds on, the first entry is past a 1 s retention
    // whatever fraction of a second it was recorded at.
    std::thread::sleep(std::time::Duration::from_millis(2200));
    register(&server.addr, "new@example.com");
    let pruned = admin_json(&cfg, &["audit", "prune"]);
    assert!(pruned["pruned"].as_u64().expect("pruned") >= 1, "{pruned}");
    let left = listed(&cfg, &["--type", "register"]);
    let emails: Vec<&str> = left
        .iter()
        .map(|e| e["detail"]["email"].as_str().expect("email"))
        .collect();
    assert_eq!(emails, ["new@example.com"], "{left:?}");
    let verified = admin_json(&cfg, &["audit", "verify"]);
    assert!(
        verified["pruned"].as_u64().expect("pruned") >= 1,
        "{verified}"
    );
    assert_eq!(verified["verified"], left.len() as u64, "{verified}");
    assert_eq!(server.terminate().0, 0);
    let (code, _, err) = admin(&cfg, &["audit", "verify"]);
    assert_eq!(code, 0, "stopped: {err}");
}
