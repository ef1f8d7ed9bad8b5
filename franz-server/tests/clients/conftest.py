"""Fixtures that run the real franz-server binary for the client tests.

Each test gets its own broker on a free loopback port with a fresh data folder. The
binary is target/debug/franz-server unless FRANZ_SERVER_BIN names another one. Build it
first with `cargo build -p franz-server --bin franz-server`.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

# Show the compared values when an assert in the shared helpers fails.
pytest.register_assert_rewrite("support")

REPOSITORY = Path(__file__).resolve().parents[3]
DEFAULT_SERVER_BIN = REPOSITORY / "target" / "debug" / "franz-server"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
LOG_TAIL_LINES = 60


def free_port():
    """Return a loopback port that was free a moment ago.

    Another process may take it before the broker binds it, which would make the start
    fail with the broker's bind error in the log.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FranzServer:
    """One franz-server process, restartable on the same port and data folder."""

    def __init__(self, binary, data_dir, log_path, extra_args=()):
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.grpc_listener = f"127.0.0.1:{free_port()}"
        self.process = None

    def start(self):
        """Start the broker and wait until its port accepts connections."""
        if not self.binary.is_file():
            raise FileNotFoundError(
                f"franz-server binary not found at {self.binary}: run "
                "`cargo build -p franz-server --bin franz-server` or set FRANZ_SERVER_BIN"
            )
        command = [
            str(self.binary),
            "--listener", self.bootstrap,
            "--grpc-listener", self.grpc_listener,
            "--data-dir", str(self.data_dir),
            "--group-initial-rebalance-delay-ms", "0",
            *self.extra_args,
        ]
        environment = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        with open(self.log_path, "ab") as log:
            log.write(f"\n== starting: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=environment
            )
        self._wait_until_listening()

    def _wait_until_listening(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            exit_code = self.process.poll()
            if exit_code is not None:
                raise RuntimeError(
                    f"franz-server exited with code {exit_code} before listening on "
                    f"{self.bootstrap}; its log:\n{self.log_tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise TimeoutError(
            f"franz-server did not accept connections on {self.bootstrap} within "
            f"{START_TIMEOUT_S:.0f} s; its log:\n{self.log_tail()}"
        )

    def stop(self):
        """Send SIGTERM and return the exit code, killing the process if it hangs."""
        if self.process is None:
            return None
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
            raise TimeoutError(
                f"franz-server (pid {process.pid}) did not stop within {STOP_TIMEOUT_S:.0f} s "
                f"of SIGTERM and was killed; its log:\n{self.log_tail()}"
            )

    def kill(self):
        """Send SIGKILL to this broker's process only."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.kill()
        process.wait(timeout=STOP_TIMEOUT_S)

    def restart(self):
        """Stop the broker cleanly (asserting exit code 0) and start it on the same port."""
        exit_code = self.stop()
        assert exit_code == 0, f"franz-server exited with {exit_code} on SIGTERM; log:\n{self.log_tail()}"
        self.start()

    def log_tail(self, lines=LOG_TAIL_LINES):
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def server(tmp_path):
    """Start a broker for one test and stop it afterwards, asserting a clean exit."""
    binary = os.environ.get("FRANZ_SERVER_BIN", str(DEFAULT_SERVER_BIN))
    franz = FranzServer(binary, tmp_path / "data", tmp_path / "franz-server.log")
    franz.start()
    try:
        yield franz
    finally:
        exit_code = franz.stop()
        assert exit_code in (0, None), f"franz-server exited with {exit_code} on SIGTERM; log:\n{franz.log_tail()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the tail of the broker's log to the report of a failed test."""
    outcome = yield
    report = outcome.get_result()
    franz = item.funcargs.get("server") if hasattr(item, "funcargs") else None
    if report.failed and isinstance(franz, FranzServer):
        report.sections.append((f"franz-server log, last {LOG_TAIL_LINES} lines", franz.log_tail()))
