//! Real worker processes: both wire forms, exits, signals and process-group teardown.

use hyperfleet_train::{spawn_worker, GroupId, IoMode, WorkerEvent, WorkerKey, WorkerLaunch};
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

const KEY: WorkerKey = WorkerKey { group: GroupId(1), rank: 0 };

async fn next(rx: &mut UnboundedReceiver<(WorkerKey, WorkerEvent)>) -> WorkerEvent {
    let (k, ev) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("event in time").expect("open");
    assert_eq!(k, KEY);
    ev
}

fn sh(script: &str, dir: &std::path::Path) -> WorkerLaunch {
    WorkerLaunch {
        argv: vec!["sh".into(), "-c".into(), script.into()],
        env: vec![("HF_TEST".into(), "yes".into())],
        cwd: Some(dir.to_path_buf()),
        io: IoMode::Lines { stdout_log: dir.join("stdout.log"), stderr_log: dir.join("stderr.log") },
    }
}

#[tokio::test]
async fn line_protocol_reports_waits_for_the_decision_and_logs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = unbounded_channel();
    let script = r#"echo "hello $HF_TEST"; echo '@hyperfleet checkpoint /tmp/ck'; echo '@hyperfleet report {"loss": 0.5}'; read r; echo "got $r" >&2; echo '@hyperfleet report {"loss": 0.25}'; read r; echo "got $r" >&2"#;
    let w = spawn_worker(sh(script, dir.path()), KEY, tx).unwrap();
    match next(&mut rx).await {
        WorkerEvent::Report { metrics, checkpoint } => {
            assert_eq!(metrics["loss"], 0.5);
            assert_eq!(checkpoint.unwrap().to_str(), Some("/tmp/ck"));
        }
        other => panic!("{other:?}"),
    }
    w.ack(false);
    match next(&mut rx).await {
        WorkerEvent::Report { metrics, checkpoint } => {
            assert_eq!(metrics["loss"], 0.25);
            assert_eq!(checkpoint, None, "a checkpoint line applies to one report");
        }
        other => panic!("{other:?}"),
    }
    w.ack(true);
    assert_eq!(next(&mut rx).await, WorkerEvent::Done);
    assert_eq!(next(&mut rx).await, WorkerEvent::Exited { code: Some(0), signal: None });
    assert_eq!(std::fs::read_to_string(dir.path().join("stdout.log")).unwrap(), "hello yes\n");
    assert_eq!(std::fs::read_to_string(dir.path().join("stderr.log")).unwrap(), "got continue\ngot stop\n");
}

#[tokio::test]
async fn a_failing_command_exits_without_done_and_bad_lines_are_protocol_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = unbounded_channel();
    spawn_worker(sh("echo '@hyperfleet report [1, 2]'; exit 3", dir.path()), KEY, tx).unwrap();
    assert!(matches!(next(&mut rx).await, WorkerEvent::Protocol(m) if m.contains("JSON object")));
    assert_eq!(next(&mut rx).await, WorkerEvent::Exited { code: Some(3), signal: None });
}

#[tokio::test]
async fn killing_a_worker_kills_its_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = unbounded_channel();
    let w =
        spawn_worker(sh("sleep 60 & echo $! > child.pid; echo '@hyperfleet report {}'; sleep 60", dir.path()), KEY, tx)
            .unwrap();
    assert!(matches!(next(&mut rx).await, WorkerEvent::Report { .. }));
    let child: i32 = std::fs::read_to_string(dir.path().join("child.pid")).unwrap().trim().parse().unwrap();
    w.signal(libc::SIGKILL);
    assert_eq!(next(&mut rx).await, WorkerEvent::Exited { code: None, signal: Some(libc::SIGKILL) });
    // The grandchild was in the same group: it is gone too (reaped by init, or a zombie at worst).
    let mut gone = false;
    for _ in 0..100 {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "orphan process {child} survived");
}

#[tokio::test]
async fn socket_workers_speak_json_over_fd_3() {
    let python = std::env::var("HYPERFLEET_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = unbounded_channel();
    let script = r#"
import json, os, socket
s = socket.socket(fileno=3); r = s.makefile("rb"); w = s.makefile("wb")
def send(m): w.write(json.dumps(m).encode() + b"\n"); w.flush()
send({"t": "ready", "pid": os.getpid()})
msg = json.loads(r.readline())
send({"t": "report", "metrics": {"x": msg["x"]}, "checkpoint": None})
ack = json.loads(r.readline())
print("ack", ack["stop"])
send({"t": "error", "error": "ValueError: no", "traceback": "tb"})
send({"t": "done"})
"#;
    let launch = WorkerLaunch {
        argv: vec![python, "-c".into(), script.into()],
        env: vec![],
        cwd: None,
        io: IoMode::Socket { log: dir.path().join("worker.log") },
    };
    let w = spawn_worker(launch, KEY, tx).unwrap();
    assert!(matches!(next(&mut rx).await, WorkerEvent::Ready { pid } if pid == w.pid));
    w.send_json(&serde_json::json!({"t": "run", "x": 7}));
    assert!(matches!(next(&mut rx).await, WorkerEvent::Report { metrics, .. } if metrics["x"] == 7));
    w.ack(true);
    assert_eq!(next(&mut rx).await, WorkerEvent::Error { error: "ValueError: no".into(), traceback: "tb".into() });
    assert_eq!(next(&mut rx).await, WorkerEvent::Done);
    assert_eq!(next(&mut rx).await, WorkerEvent::Exited { code: Some(0), signal: None });
    assert_eq!(std::fs::read_to_string(dir.path().join("worker.log")).unwrap(), "ack True\n");
}
