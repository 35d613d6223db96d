//! The Python MCP fixture server (tests/fixtures/mcp_server.py) as a child process.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Which protocol era the fixture accepts.
#[derive(Clone, Copy, Debug)]
pub enum Era {
    /// Dual-era: the client's 2026-07-28 `server/discover` succeeds.
    Modern,
    /// Refuses `server/discover`, so clients use the legacy `initialize` handshake.
    Legacy,
}

/// The Python with the pinned `mcp` package; `scripts/test` prepares it.
pub fn python() -> PathBuf {
    let path = std::env::var_os("LINKER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/mcp-venv/bin/python")
        });
    assert!(
        path.exists(),
        "the MCP fixture needs Python with the `mcp` package at {}: run scripts/test, which installs it",
        path.display()
    );
    path
}

/// The fixture script.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp_server.py")
}

/// A running fixture over Streamable HTTP; killed on drop.
pub struct McpFixture {
    child: Child,
    port: u16,
    era: Era,
    dir: TempDir,
}

impl McpFixture {
    /// Starts the fixture on a free loopback port and waits until it accepts connections.
    pub fn start(era: Era) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("temp dir");
        let child = spawn(port, era, dir.path());
        wait_until_listening(port);
        Self {
            child,
            port,
            era,
            dir,
        }
    }

    /// The MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Kills the server (ending every session it held) and starts a new one on the same port.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.port, self.era, self.dir.path());
        wait_until_listening(self.port);
    }

    /// How many requests with this JSON-RPC method the fixture received.
    pub fn count(&self, method: &str) -> usize {
        std::fs::read_to_string(self.dir.path().join("methods.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| *line == method)
            .count()
    }
}

impl Drop for McpFixture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(port: u16, era: Era, dir: &Path) -> Child {
    let mut command = Command::new(python());
    command
        .arg(script())
        .args(["--port", &port.to_string()])
        .arg("--log")
        .arg(dir.join("methods.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if matches!(era, Era::Legacy) {
        command.arg("--legacy-only");
    }
    command.spawn().expect("the fixture starts")
}

fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the MCP fixture did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
