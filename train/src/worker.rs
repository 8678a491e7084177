//! Worker processes: spawning, their two wire forms, supervision.
//!
//! A Python worker speaks JSON lines over a socket pair inherited as fd 3, so no listener
//! exists that another local user could reach. Any other program speaks the line protocol
//! on stdout (`@hyperfleet report {...}`) and reads the decision (`continue` / `stop`) on stdin.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// Prefix of a protocol line on a command trainable's stdout.
pub const LINE_PREFIX: &str = "@hyperfleet ";

/// A worker group: the unit that is placed, launched and torn down together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

/// One worker of a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkerKey {
    /// Its group.
    pub group: GroupId,
    /// Its rank within the group.
    pub rank: u32,
}

/// How a worker talks to the driver.
#[derive(Clone, Debug)]
pub enum IoMode {
    /// JSON messages over a socket on fd 3; stdout and stderr appended to `log` until the worker redirects them.
    Socket {
        /// Where output goes before the first trial redirects it.
        log: PathBuf,
    },
    /// Protocol lines on stdout, replies on stdin; other output to the two files.
    Lines {
        /// Non-protocol stdout lines.
        stdout_log: PathBuf,
        /// All of stderr.
        stderr_log: PathBuf,
    },
}

/// What to start.
#[derive(Clone, Debug)]
pub struct WorkerLaunch {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Working directory (inherited when `None`).
    pub cwd: Option<PathBuf>,
    /// Wire form.
    pub io: IoMode,
}

/// Something a worker did.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerEvent {
    /// A Python worker is up and waits for a trial.
    Ready {
        /// Its process id.
        pid: u32,
    },
    /// A result; `report()` in the worker blocks until it is acknowledged.
    Report {
        /// The metrics as reported.
        metrics: Map<String, Value>,
        /// A directory to persist as a checkpoint before acknowledging.
        checkpoint: Option<PathBuf>,
    },
    /// The trainable returned.
    Done,
    /// The trainable raised.
    Error {
        /// Exception type and message.
        error: String,
        /// Full traceback.
        traceback: String,
    },
    /// A line that breaks the protocol.
    Protocol(String),
    /// The process ended; always the last event of a worker.
    Exited {
        /// Exit code, when it exited.
        code: Option<i32>,
        /// Signal number, when killed.
        signal: Option<i32>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum SocketMsg {
    Ready {
        pid: u32,
    },
    Report {
        metrics: Map<String, Value>,
        #[serde(default)]
        checkpoint: Option<String>,
    },
    Done,
    Error {
        error: String,
        #[serde(default)]
        traceback: String,
    },
}

/// A running worker: send it messages, signal its process group.
#[derive(Debug)]
pub struct WorkerHandle {
    /// Process id (also its process group id).
    pub pid: u32,
    socket: bool,
    out: UnboundedSender<Vec<u8>>,
    /// The socket itself, for acknowledgements written straight from another thread.
    direct: Option<std::sync::Arc<std::os::unix::net::UnixStream>>,
}

impl WorkerHandle {
    /// Sends one JSON message (Python workers only; ignored for commands).
    pub fn send_json(&self, msg: &Value) {
        if self.socket {
            let mut line = serde_json::to_vec(msg).unwrap_or_default();
            line.push(b'\n');
            let _ = self.out.send(line);
        }
    }

    /// Answers a report: `stop` tells the trainable to end at this point.
    pub fn ack(&self, stop: bool) {
        self.acker(stop).send();
    }

    /// A sendable acknowledgement, for the store thread to send after the commit.
    pub fn acker(&self, stop: bool) -> Acker {
        let line: &'static [u8] = match (self.socket, stop) {
            (true, false) => b"{\"t\":\"ack\",\"stop\":false}\n",
            (true, true) => b"{\"t\":\"ack\",\"stop\":true}\n",
            (false, false) => b"continue\n",
            (false, true) => b"stop\n",
        };
        Acker { out: self.out.clone(), line, direct: self.direct.clone() }
    }

    /// Sends `sig` to the worker's whole process group.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a negative pid targets the process group we created with setsid.
        unsafe {
            libc::kill(-(self.pid as i32), sig);
        }
    }
}

/// An acknowledgement ready to send to one worker.
#[derive(Debug)]
pub struct Acker {
    out: UnboundedSender<Vec<u8>>,
    line: &'static [u8],
    direct: Option<std::sync::Arc<std::os::unix::net::UnixStream>>,
}

impl Acker {
    /// Sends it (a worker that is gone is ignored). A socket worker's acknowledgement is written
    /// on the caller's thread when the socket takes it at once: the store thread answers a
    /// durable report without waking the controller. Nothing else is ever written to a worker
    /// while it waits for an acknowledgement, so the two paths cannot interleave.
    pub fn send(self) {
        use std::io::Write;
        let mut rest: &[u8] = self.line;
        if let Some(s) = &self.direct {
            match (&**s).write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return, // the worker is gone
            }
        }
        if !rest.is_empty() {
            let _ = self.out.send(rest.to_vec());
        }
    }
}

fn exit_event(status: std::io::Result<std::process::ExitStatus>) -> WorkerEvent {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => WorkerEvent::Exited { code: s.code(), signal: s.signal() },
        Err(_) => WorkerEvent::Exited { code: None, signal: None },
    }
}

/// Starts a worker process in its own process group (killed if the driver thread dies) and its IO tasks.
/// Must run inside a tokio runtime. Events arrive on `events` in order, `Exited` last.
pub fn spawn_worker(
    launch: WorkerLaunch,
    key: WorkerKey,
    events: UnboundedSender<(WorkerKey, WorkerEvent)>,
) -> std::io::Result<WorkerHandle> {
    let Some(program) = launch.argv.first() else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty command"));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(&launch.argv[1..]).envs(launch.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &launch.cwd {
        cmd.current_dir(cwd);
    }
    let (out_tx, mut out_rx) = unbounded_channel::<Vec<u8>>();
    match launch.io {
        IoMode::Socket { log } => {
            let (parent, child) = std::os::unix::net::UnixStream::pair()?;
            let log = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
            cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
            let child_fd = child.as_raw_fd();
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::setsid();
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if child_fd == 3 {
                        let flags = libc::fcntl(3, libc::F_GETFD);
                        libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC);
                    } else if libc::dup2(child_fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut proc = cmd.spawn()?;
            drop(child);
            let pid = proc.id().unwrap_or(0);
            parent.set_nonblocking(true)?;
            let direct = std::sync::Arc::new(parent.try_clone()?);
            let stream = tokio::net::UnixStream::from_std(parent)?;
            let (rd, mut wr) = stream.into_split();
            tokio::spawn(async move {
                while let Some(buf) = out_rx.recv().await {
                    if wr.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut lines = BufReader::new(rd).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let ev = match serde_json::from_str::<SocketMsg>(&line) {
                        Ok(SocketMsg::Ready { pid }) => WorkerEvent::Ready { pid },
                        Ok(SocketMsg::Report { metrics, checkpoint }) => {
                            WorkerEvent::Report { metrics, checkpoint: checkpoint.map(PathBuf::from) }
                        }
                        Ok(SocketMsg::Done) => WorkerEvent::Done,
                        Ok(SocketMsg::Error { error, traceback }) => WorkerEvent::Error { error, traceback },
                        Err(e) => WorkerEvent::Protocol(format!("bad message from worker ({e}): {line}")),
                    };
                    if events.send((key, ev)).is_err() {
                        break;
                    }
                }
                let _ = events.send((key, exit_event(proc.wait().await)));
            });
            Ok(WorkerHandle { pid, socket: true, out: out_tx, direct: Some(direct) })
        }
        IoMode::Lines { stdout_log, stderr_log } => {
            let err = std::fs::OpenOptions::new().create(true).append(true).open(&stderr_log)?;
            let mut out_file =
                std::io::LineWriter::new(std::fs::OpenOptions::new().create(true).append(true).open(&stdout_log)?);
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(err);
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut proc = cmd.spawn()?;
            let pid = proc.id().unwrap_or(0);
            let mut stdin = proc.stdin.take();
            let stdout = proc.stdout.take();
            tokio::spawn(async move {
                while let Some(buf) = out_rx.recv().await {
                    let Some(w) = stdin.as_mut() else { break };
                    if w.write_all(&buf).await.is_err() || w.flush().await.is_err() {
                        // The program closed stdin: it does not read decisions; stop falls back to signals.
                        stdin = None;
                    }
                }
            });
            tokio::spawn(async move {
                let mut pending_ckpt: Option<PathBuf> = None;
                if let Some(stdout) = stdout {
                    let mut lines = BufReader::new(stdout).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let Some(rest) = line.strip_prefix(LINE_PREFIX) else {
                            let _ = writeln!(out_file, "{line}");
                            continue;
                        };
                        let ev = parse_directive(rest.trim(), &mut pending_ckpt);
                        if let Some(ev) = ev {
                            if events.send((key, ev)).is_err() {
                                break;
                            }
                        }
                    }
                }
                let status = proc.wait().await;
                if matches!(&status, Ok(s) if s.success()) {
                    let _ = events.send((key, WorkerEvent::Done));
                }
                let _ = events.send((key, exit_event(status)));
            });
            Ok(WorkerHandle { pid, socket: false, out: out_tx, direct: None })
        }
    }
}

/// Parses one `@hyperfleet` directive of the line protocol.
pub fn parse_directive(rest: &str, pending_ckpt: &mut Option<PathBuf>) -> Option<WorkerEvent> {
    let (verb, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let arg = arg.trim();
    match verb {
        "report" => match serde_json::from_str::<Value>(arg) {
            Ok(Value::Object(metrics)) => Some(WorkerEvent::Report { metrics, checkpoint: pending_ckpt.take() }),
            _ => Some(WorkerEvent::Protocol(format!(
                "`@hyperfleet report` expects a JSON object of metrics, got: {arg}"
            ))),
        },
        "checkpoint" if !arg.is_empty() => {
            *pending_ckpt = Some(PathBuf::from(arg));
            None
        }
        _ => Some(WorkerEvent::Protocol(format!(
            "unknown directive `@hyperfleet {rest}`: expected `report {{json}}` or `checkpoint <dir>`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_parse() {
        let mut p = None;
        assert_eq!(parse_directive("checkpoint /tmp/x", &mut p), None);
        match parse_directive("report {\"loss\": 0.5}", &mut p) {
            Some(WorkerEvent::Report { metrics, checkpoint }) => {
                assert_eq!(metrics["loss"], 0.5);
                assert_eq!(checkpoint, Some(PathBuf::from("/tmp/x")));
            }
            other => panic!("{other:?}"),
        }
        assert!(p.is_none());
        assert!(matches!(parse_directive("report [1]", &mut p), Some(WorkerEvent::Protocol(_))));
        assert!(matches!(parse_directive("rapport {}", &mut p), Some(WorkerEvent::Protocol(_))));
    }
}
