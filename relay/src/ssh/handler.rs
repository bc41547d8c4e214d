//! One SSH connection as the gateway sees it: the user's key, the `-R` forwards OpenSSH
//! asks for, then the command on the session channel, which starts the tunnels or ends in
//! one line on the user's terminal saying why not.

use super::bridge::{self, Start};
use super::command::{self, CommandError, Forward, MAX_FORWARDS};
use crate::session::Pending;
use crate::state::RelayState;
use russh::keys::PublicKey;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, Disconnect};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::{debug, info};

/// What the gateway knows of one SSH connection.
pub struct Conn {
    state: Arc<RelayState>,
    peer: SocketAddr,
    worker: usize,
    /// The key the user proved, once they have.
    key: Option<Key>,
    forwards: Vec<Forward>,
    /// The session channel the user watches.
    channel: Option<ChannelId>,
    started: bool,
    /// Counted against `max_pending_agents` until a tunnel session starts.
    pending: Arc<Mutex<Option<Pending>>>,
    gone: watch::Receiver<bool>,
}

struct Key {
    fingerprint: String,
    line: String,
}

impl Conn {
    /// A connection from `peer`, served on worker `worker`.
    pub fn new(
        state: Arc<RelayState>,
        peer: SocketAddr,
        worker: usize,
        pending: Arc<Mutex<Option<Pending>>>,
        gone: watch::Receiver<bool>,
    ) -> Self {
        Conn {
            state,
            peer,
            worker,
            key: None,
            forwards: Vec::new(),
            channel: None,
            started: false,
            pending,
            gone,
        }
    }

    /// Starts the tunnels the command asks for, or says why not.
    fn start(
        &mut self,
        channel: ChannelId,
        line: &str,
        session: &mut Session,
    ) -> Result<(), String> {
        if self.started {
            return Err("one command per connection".into());
        }
        let cmd = command::parse(line).map_err(|e| e.to_string())?;
        if self.forwards.is_empty() {
            return Err(CommandError::NoForward.to_string());
        }
        let key = self.key.as_ref().ok_or("no key was presented")?;
        let allow_any = self.state.cfg.ssh_allow_any_key;
        let principal = self
            .state
            .team
            .authenticate_key(
                &key.fingerprint,
                &key.line,
                allow_any,
                &super::client_id(&key.fingerprint),
            )
            .map_err(|e| e.to_string())?;
        let domain = &self.state.cfg.domain;
        let forwards = self
            .forwards
            .iter()
            .map(|f| Ok((f.clone(), cmd.request(f, domain)?)))
            .collect::<Result<Vec<_>, CommandError>>()
            .map_err(|e| e.to_string())?;
        self.started = true;
        // Authenticated: the connection no longer waits in the queue of strangers.
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        info!(peer = %self.peer, key = %key.fingerprint, account = ?principal.as_ref().map(|p| &p.account), command = %line, "ssh tunnel session starting");
        let start = Start {
            state: self.state.clone(),
            peer: self.peer,
            principal,
            fingerprint: key.fingerprint.clone(),
            client_version: String::from_utf8_lossy(session.remote_sshid()).into_owned(),
            ssh: session.handle(),
            channel,
            command: cmd,
            forwards,
            worker: self.worker,
            gone: self.gone.clone(),
        };
        // Sessions are actors: they start on the worker's arbiter, as agents' do.
        self.state.pool.get(self.worker).spawn(bridge::run(start));
        Ok(())
    }
}

/// Writes `why` on the session's stderr and closes the channel with status 1.
fn refuse(session: &mut Session, channel: ChannelId, why: &str) -> Result<(), russh::Error> {
    session.extended_data(channel, 1, format!("burrow: {why}\r\n"))?;
    session.exit_status_request(channel, 1)?;
    session.eof(channel)?;
    session.close(channel)
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_publickey(&mut self, _user: &str, key: &PublicKey) -> Result<Auth, Self::Error> {
        // Every key that proves itself gets in, so that an unregistered one hears why it
        // cannot start anything (and how to register it) instead of "Permission denied".
        let blob = key.to_bytes().map_err(|_| russh::Error::CouldNotReadKey)?;
        let fingerprint = burrow_store::ssh::fingerprint_of(&blob);
        let line = key.to_openssh().unwrap_or_default();
        debug!(peer = %self.peer, key = %fingerprint, "ssh key proved");
        self.key = Some(Key { fingerprint, line });
        Ok(Auth::Accept)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        if self.forwards.len() >= MAX_FORWARDS || self.started {
            return Ok(false);
        }
        // The client must be told a port now, before the command says which kind of tunnel
        // (and so which public port) this is; it only labels the channels we open for it.
        let bound = if *port == 0 {
            u32::try_from(self.forwards.len() + 1).unwrap_or(1)
        } else {
            *port
        };
        self.forwards.push(Forward {
            address: address.to_string(),
            port: *port,
            bound,
        });
        *port = bound;
        Ok(true)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        _address: &str,
        _port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }

    async fn channel_open_session(
        &mut self,
        mut channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.channel.is_some() {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        let id = channel.id();
        self.channel = Some(id);
        reply.accept().await;
        // What the user types is not for anyone; it is read, and its window reopened, so it
        // never piles up.
        let ssh = session.handle();
        tokio::spawn(async move {
            while let Some(msg) = channel.wait().await {
                if let ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } = msg {
                    let _ = ssh.window_adjust(id, data.len() as u32);
                }
            }
        });
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // With a terminal (ssh -t), Ctrl-C and Ctrl-D arrive as bytes rather than as a
        // signal to the local ssh.
        if Some(channel) == self.channel && data.iter().any(|b| *b == 3 || *b == 4) {
            session.disconnect(Disconnect::ByApplication, "tunnel closed", "")?;
        }
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        refuse(session, channel, &CommandError::Missing.to_string())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        let line = String::from_utf8_lossy(data).into_owned();
        match self.start(channel, &line, session) {
            Ok(()) => Ok(()),
            Err(why) => {
                info!(peer = %self.peer, key = ?self.key.as_ref().map(|k| &k.fingerprint), command = %line, err = %why, "ssh tunnel refused");
                refuse(session, channel, &why)
            }
        }
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        refuse(
            session,
            channel,
            &format!("there is no {name} here: this is a tunnel relay"),
        )
    }
}
