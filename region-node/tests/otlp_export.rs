//! With the `otlp` feature and `OTEL_EXPORTER_OTLP_ENDPOINT` set, a serving node sends its
//! request spans to that collector over OTLP/HTTP. The collector here is a bare HTTP listener
//! that records what it is sent. Run by `scripts/test.sh` as
//! `cargo test -p region-node --features otlp --test otlp_export`.
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the collector received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    body: Vec<u8>,
}

/// Answers every request 200 and keeps it.
fn collector() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let keep = Arc::clone(&keep);
            std::thread::spawn(move || serve(stream, &keep));
        }
    });
    (port, received)
}

fn serve(stream: TcpStream, keep: &Mutex<Vec<Received>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned();
        let (mut length, mut content_type) = (0, String::new());
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "content-type" => value.trim().clone_into(&mut content_type),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        keep.lock().unwrap().push(Received {
            path,
            content_type,
            body,
        });
        let mut writer = &stream;
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
    }
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn request_spans_reach_the_collector() {
    let (collector_port, received) = collector();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let database = format!("aigo_otlp_{id}");
    let url = format!("{}/{database}", admin.rsplit_once('/').unwrap().0);
    let brokers = std::env::var("KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let dir = std::env::temp_dir().join(format!("aigo-otlp-{id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "region = \"eu-west\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n[database]\nurl = \"{url}\"\n\
             [kafka]\nbrokers = \"{brokers}\"\ntopic_prefix = \"otlp-{id}\"\n"
        ),
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_region-node"));
    command
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{collector_port}"),
        )
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("node.log")).unwrap());
    let node = Node(command.spawn().unwrap());

    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let exported = loop {
        assert!(
            Instant::now() < deadline,
            "no span of GET /v1/counts reached the collector; received {:?}\n{}",
            received
                .lock()
                .unwrap()
                .iter()
                .take(5)
                .map(|r| (r.path.clone(), r.content_type.clone(), r.body.len()))
                .collect::<Vec<_>>(),
            std::fs::read_to_string(dir.join("node.log")).unwrap_or_default()
        );
        let _ = client
            .get(format!("http://127.0.0.1:{port}/v1/counts"))
            .send();
        std::thread::sleep(Duration::from_millis(300));
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|r| contains(&r.body, b"/v1/counts"))
            .cloned();
        if let Some(found) = found {
            break found;
        }
    };
    assert_eq!(exported.path, "/v1/traces");
    assert_eq!(exported.content_type, "application/x-protobuf");
    assert!(
        contains(&exported.body, b"aigo-region-node"),
        "service name missing"
    );
    drop(node);
    let _ = Command::new("psql")
        .arg(&admin)
        .args([
            "-qc",
            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
        ])
        .output();
    let _ = std::fs::remove_dir_all(&dir);
}
