//! systemd's readiness protocol (sd_notify): `READY=1` once connections are accepted,
//! `STOPPING=1` when shutdown starts, sent as datagrams to `$NOTIFY_SOCKET`. Written out with the
//! standard library because the protocol is one datagram; a missing socket is not an error.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// Send `state` (e.g. "READY=1") to the notify socket, if there is one. `socket` is the value
/// of `$NOTIFY_SOCKET`: a path, or `@name` for an abstract socket.
pub fn notify(socket: Option<&str>, state: &str) {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return;
    };
    if let Err(e) = send(socket, state) {
        tracing::warn!(error = %e, state, "could not notify systemd");
    }
}

fn send(socket: &str, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    if let Some(name) = socket.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), Path::new(socket))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_state_to_a_path_socket() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        notify(path.to_str(), "READY=1");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1");
        notify(None, "READY=1");
        notify(Some(""), "READY=1");
    }
}
