//! Mail delivery: the `Mailer` that hands a message to its transport (an SMTP relay through
//! lettre, one file per message, or nowhere), and the worker that drains the outbox.
//!
//! Use cases never send: they write an `OutgoingMail` to the store's outbox in the transaction
//! that makes it true (`store::outbox::queue_mail`, or `queue` below), then wake the worker. The
//! worker sends what is due, one message at a time, off every request path; a failure is tried
//! again with backoff (`domain::mail::retry_delay`) until `email.max_attempts`. Delivery is at
//! least once: a message is forgotten only after the relay took it, so a crash between the two
//! sends it again, with the same `Message-ID`.

use std::fs::DirBuilder;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::Notify;

use crate::config::{Config, MailTransport};
use crate::domain::mail::{AfterFailure, OutgoingMail, QueuedMail};
use crate::error::Error;
use crate::secret::Secret;
use crate::service::state::AppState;

/// The worker looks at the outbox at least this often, so a retry falls due without a wake.
const POLL: Duration = Duration::from_secs(2);
/// Messages read from the outbox at once.
const BATCH: usize = 32;
/// The longest one SMTP exchange may take; the worker is one task, so a hung relay must not
/// hold every later message for ever.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Where mail goes, and the wake-up call of the worker that takes it there.
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    /// The domain of `Message-ID`s: the `From` address's, which is ours to name ids in.
    id_domain: String,
    wake: Notify,
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    File(PathBuf),
    None,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.transport {
            Transport::Smtp(_) => "smtp",
            Transport::File(_) => "file",
            Transport::None => "none",
        };
        f.debug_struct("Mailer")
            .field("transport", &kind)
            .finish_non_exhaustive()
    }
}

/// Why a message was not handed over.
#[derive(Debug)]
struct SendError {
    /// Trying again cannot help (a malformed address, a 5xx from the relay).
    permanent: bool,
    why: String,
}

impl Mailer {
    /// The mailer `config` asks for: reads the SMTP password file, or creates the mail
    /// directory (mode 0700). Blocking; at start only. Errors name the key at fault.
    pub fn new(config: &Config) -> Result<Mailer, String> {
        let email = &config.email;
        let from: Mailbox = email.from.parse().map_err(|e| format!("email.from: {e}"))?;
        let id_domain = from.email.domain().to_string();
        let transport = match email.transport {
            MailTransport::None => Transport::None,
            MailTransport::File => {
                let dir = config.data_dir.join("mail");
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(|e| {
                        format!("email.transport: cannot create {}: {e}", dir.display())
                    })?;
                Transport::File(dir)
            }
            MailTransport::Smtp => {
                let url = email
                    .smtp_url
                    .as_ref()
                    .ok_or("email.smtp_url: is required when transport = \"smtp\"")?;
                let tls = TlsParameters::new(url.host.clone())
                    .map_err(|e| format!("email.smtp_url: {e}"))?;
                let tls = if url.implicit_tls {
                    Tls::Wrapper(tls)
                } else if url.is_loopback() {
                    // A local relay (often with a self-signed certificate) is reached without
                    // TLS: the mail never leaves the machine on this hop.
                    Tls::None
                } else {
                    Tls::Required(tls)
                };
                let mut smtp = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host)
                    .port(url.port)
                    .tls(tls)
                    .timeout(Some(SMTP_TIMEOUT));
                if let (Some(user), Some(file)) = (&email.smtp_username, &email.smtp_password_file)
                {
                    let password = read_password(file)?;
                    smtp = smtp.credentials(Credentials::new(
                        user.clone(),
                        password.expose().to_string(),
                    ));
                }
                Transport::Smtp(smtp.build())
            }
        };
        Ok(Mailer {
            transport,
            from,
            id_domain,
            wake: Notify::new(),
        })
    }

    /// Whether mail goes anywhere at all (`transport` is not `"none"`).
    pub fn enabled(&self) -> bool {
        !matches!(self.transport, Transport::None)
    }

    /// Where the file transport writes, if it is the one in use.
    pub fn file_dir(&self) -> Option<&std::path::Path> {
        match &self.transport {
            Transport::File(dir) => Some(dir),
            _ => None,
        }
    }

    /// Tell the worker something was queued. Safe to call before it waits: the wake is kept.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The RFC 5322 message of `queued`: multipart/alternative, text then HTML.
    fn message(&self, queued: &QueuedMail) -> Result<Message, SendError> {
        let permanent = |why: String| SendError {
            permanent: true,
            why,
        };
        let to: Mailbox = queued
            .mail
            .to
            .parse()
            .map_err(|e| permanent(format!("recipient: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(queued.mail.subject.clone())
            .message_id(Some(format!("<{}@{}>", queued.id, self.id_domain)))
            .multipart(MultiPart::alternative_plain_html(
                queued.mail.text.clone(),
                queued.mail.html.clone(),
            ))
            .map_err(|e| permanent(format!("message: {e}")))
    }

    async fn send(&self, queued: &QueuedMail) -> Result<(), SendError> {
        let message = self.message(queued)?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| SendError {
                permanent: e.is_permanent(),
                why: e.to_string(),
            }),
            Transport::File(dir) => {
                let path = dir.join(format!("{}.eml", queued.id));
                let bytes = message.formatted();
                crate::blocking::run(move || write_new(&path, &bytes))
                    .await
                    .map_err(|_| SendError {
                        permanent: false,
                        why: "shutting down".into(),
                    })?
            }
            Transport::None => Err(SendError {
                permanent: false,
                why: "email.transport is \"none\"".into(),
            }),
        }
    }
}

/// The password in `file`, without the line end editors add.
fn read_password(file: &std::path::Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "email.smtp_password_file: cannot read {}: {e}",
            file.display()
        )
    })?;
    let password = text.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        return Err(format!(
            "email.smtp_password_file: {} is empty",
            file.display()
        ));
    }
    Ok(Secret::new(password.to_string()))
}

/// Write one message file, private to us (0600). An existing file is this very message written
/// before a crash kept it from leaving the outbox: it counts as delivered.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> Result<(), SendError> {
    let failed = |e: std::io::Error| SendError {
        permanent: false,
        why: format!("{}: {e}", path.display()),
    };
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(failed(e)),
    };
    file.write_all(bytes).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// Queue one message on its own and wake the worker; returns its id. Use cases that write
/// something the mail announces queue it in that same transaction instead.
pub async fn queue(state: &AppState, mail: OutgoingMail) -> Result<String, Error> {
    let id = state.store.queue_mail(mail, state.now()).await?;
    state.mailer.wake();
    Ok(id)
}

/// The delivery worker: until aborted, send what is due whenever woken, and every `POLL`.
pub async fn deliver_forever(state: Arc<AppState>) {
    loop {
        // Listening before looking, so a stop announced in between is not missed.
        let stopping = state.stopping.notified();
        tokio::pin!(stopping);
        stopping.as_mut().enable();
        if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        deliver_due(&state).await;
        tokio::select! {
            () = state.mailer.wake.notified() => {}
            () = tokio::time::sleep(POLL) => {}
            () = &mut stopping => return,
        }
    }
}

/// Send every message due now; returns how many were handed over. Each is tried at most once
/// per call: one the store failed to update stays due, and must not be sent in a tight loop.
pub async fn deliver_due(state: &AppState) -> usize {
    let mut sent = 0;
    let mut tried = std::collections::HashSet::new();
    loop {
        let due = match state.store.due_mail(state.now(), BATCH).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the mail outbox");
                return sent;
            }
        };
        let fresh: Vec<QueuedMail> = due.into_iter().filter(|q| !tried.contains(&q.id)).collect();
        if fresh.is_empty() {
            return sent;
        }
        for queued in fresh {
            tried.insert(queued.id.clone());
            if deliver_one(state, &queued).await {
                sent += 1;
            }
        }
    }
}

/// Try one message and record the outcome. Logs name the message and recipient, never the
/// body: bodies carry one-time links.
async fn deliver_one(state: &AppState, queued: &QueuedMail) -> bool {
    match state.mailer.send(queued).await {
        Ok(()) => {
            state.metrics.mail_sent();
            tracing::info!(mail_id = %queued.id, "mail sent");
            if let Err(e) = state.store.mail_sent(queued.id.clone()).await {
                // It stays queued and goes again: a duplicate beats a lost message.
                tracing::error!(mail_id = %queued.id, error = %e, "mail sent but still queued");
            }
            true
        }
        Err(e) => {
            let max = if e.permanent {
                1
            } else {
                state.config.email.max_attempts
            };
            let recorded = state
                .store
                .mail_failed(queued.id.clone(), state.now(), max)
                .await;
            match recorded {
                Ok(Some(AfterFailure::RetryAt(at))) => tracing::warn!(
                    mail_id = %queued.id,
                    attempts = queued.attempts + 1,
                    retry_in_secs = at - state.now(),
                    error = %e.why,
                    "mail not sent; will retry"
                ),
                Ok(Some(AfterFailure::GiveUp)) => {
                    tracing::error!(
                        mail_id = %queued.id,
                        to = %queued.mail.to,
                        attempts = queued.attempts + 1,
                        permanent = e.permanent,
                        error = %e.why,
                        "mail not sent; gave up and dropped it"
                    );
                    state.metrics.mail_abandoned();
                }
                Ok(None) => {}
                Err(store) => tracing::error!(
                    mail_id = %queued.id,
                    error = %store,
                    "mail not sent, and the failure could not be recorded"
                ),
            }
            // Counted once recorded and logged, so what the metric shows has happened.
            state.metrics.mail_failed();
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn queued(id: &str) -> QueuedMail {
        QueuedMail {
            id: id.into(),
            mail: OutgoingMail {
                to: "Ann <ann@example.com>".into(),
                subject: "Reset your password".into(),
                text: "Open https://x.test/reset-password?token=T0KEN".into(),
                html: "<p><a href=\"https://x.test/reset-password?token=T0KEN\">Reset</a></p>"
                    .into(),
            },
            attempts: 0,
            next_attempt_at: 0,
            created_at: 0,
        }
    }

    fn file_config(dir: &std::path::Path) -> Config {
        let text = format!("data_dir = {:?}\n", dir.join("data").display().to_string());
        Config::from_toml(&text).expect("config")
    }

    #[tokio::test]
    async fn the_file_transport_writes_private_multipart_files_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mailer = Mailer::new(&file_config(tmp.path())).expect("mailer");
        let dir = mailer.file_dir().expect("file transport").to_path_buf();
        let mode =
            |p: &std::path::Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        mailer.send(&queued("mail-a")).await.expect("sent");
        let file = dir.join("mail-a.eml");
        assert_eq!(mode(&file), 0o600);
        let text = std::fs::read_to_string(&file).expect("read");
        for part in [
            "From: cloudheed-auth <noreply@localhost>",
            "To: Ann <ann@example.com>",
            "Subject: Reset your password",
            "Message-ID: <mail-a@localhost>",
            "multipart/alternative",
            "text/plain",
            "text/html",
        ] {
            assert!(text.contains(part), "{part} in:\n{text}");
        }
        // Written again after a crash: the file that is there stands, nothing fails.
        std::fs::write(&file, "first").expect("write");
        mailer.send(&queued("mail-a")).await.expect("sent again");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "first");
    }

    #[tokio::test]
    async fn a_bad_recipient_is_a_permanent_failure() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mailer = Mailer::new(&file_config(tmp.path())).expect("mailer");
        let mut q = queued("mail-b");
        q.mail.to = "not an address".into();
        let err = mailer.send(&q).await.expect_err("refused");
        assert!(err.permanent, "{err:?}");
    }

    #[test]
    fn the_smtp_password_is_read_from_its_file_at_start() {
        let tmp = tempfile::tempdir().expect("tmp");
        let pw = tmp.path().join("pw");
        let text = |file: &std::path::Path| {
            format!(
                "[email]\ntransport = \"smtp\"\nsmtp_url = \"smtp://127.0.0.1:2525\"\nsmtp_username = \"u\"\nsmtp_password_file = {:?}\n",
                file.display().to_string()
            )
        };
        let config = Config::from_toml(&text(&pw)).expect("config");
        let err = Mailer::new(&config).expect_err("missing file");
        assert!(
            err.starts_with("email.smtp_password_file: cannot read"),
            "{err}"
        );
        std::fs::write(&pw, "hunter2\n").expect("write");
        assert_eq!(read_password(&pw).expect("read").expose(), "hunter2");
        let mailer = Mailer::new(&config).expect("mailer");
        assert!(mailer.enabled());
        assert!(!format!("{mailer:?}").contains("hunter2"));
    }
}
