//! Two instances of the built binary on one PostgreSQL behind one address: one is killed with
//! SIGKILL under load, the other keeps serving, and nothing acknowledged is lost.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::support::{admin_json, configured, http, start, try_http};

/// A TCP front on a free port handing each connection to the next of `backends` that accepts
/// it (a load balancer's health check, reduced to "does it connect").
fn front(backends: Vec<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let first = next.fetch_add(1, Ordering::Relaxed);
            let upstream = (0..backends.len())
                .map(|i| &backends[(first + i) % backends.len()])
                .find_map(|b| TcpStream::connect(b).ok());
            let Some(upstream) = upstream else { continue };
            let (mut c_in, mut u_out) = (
                client.try_clone().expect("clone"),
                upstream.try_clone().expect("clone"),
            );
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut u_out);
                let _ = u_out.shutdown(std::net::Shutdown::Write);
            });
            let (mut u_in, mut c_out) = (upstream, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u_in, &mut c_out);
                let _ = c_out.flush();
                let _ = c_out.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

#[test]
fn killing_one_of_two_instances_under_load_loses_nothing_acknowledged() {
    let Some(pg) = crate::postgres::server() else {
        return;
    };
    let url = pg.new_schema();
    let toml = format!(
        "[passwords]\nscrypt_log_n = 10\n[store]\nbackend = \"postgres\"\nurl = \"{url}\"\n"
    );
    let (dir_a, args_a) = configured(&toml);
    let (dir_b, args_b) = configured(&toml);
    let cfg_b = args_b[1].clone();
    let args_a: Vec<&str> = args_a.iter().map(String::as_str).collect();
    let args_b: Vec<&str> = args_b.iter().map(String::as_str).collect();
    let mut a = start(dir_a.path(), &args_a, &[]);
    let b = start(dir_b.path(), &args_b, &[]);
    let front = front(vec![a.addr.clone(), b.addr.clone()]);

    let acked = Arc::new(Mutex::new(Vec::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let after_kill = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (front, acked, killed, after_kill, stop) = (
                front.clone(),
                acked.clone(),
                killed.clone(),
                after_kill.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let email = format!("fail{w}-{i}@example.com");
                    let body =
                        json!({"email": email, "password": "failover-password-1", "name": "F"});
                    if let Some((201, _)) =
                        try_http(&front, "POST", "/v1/auth/register", None, Some(&body))
                    {
                        acked.lock().expect("lock").push(email);
                        if killed.load(Ordering::Relaxed) {
                            after_kill.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    a.child.kill().expect("SIGKILL");
    a.child.wait().expect("reaped");
    killed.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("worker");
    }
    assert!(
        after_kill.load(Ordering::Relaxed) > 0,
        "the other instance kept serving"
    );
    let acked = acked.lock().expect("lock").clone();
    for email in &acked {
        let body = json!({"email": email, "password": "failover-password-1"});
        assert_eq!(
            http(&b.addr, "POST", "/v1/auth/login", None, Some(&body)).0,
            200,
            "{email} was acknowledged"
        );
    }
    let verified = admin_json(&cfg_b, &["audit", "verify"]);
    assert!(verified["verified"].as_u64().expect("n") >= acked.len() as u64);
    assert_eq!(b.terminate().0, 0);
    // With no instance running, the admin CLI works on the database directly.
    let users = admin_json(&cfg_b, &["user", "list"]);
    // (A registration committed just before its instance died may never have been answered.)
    assert!(users.as_array().expect("users").len() >= acked.len());
}
