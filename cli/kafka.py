"""`fraud kafka`: a single-node Apache Kafka broker (KRaft mode) for development and tests.

The broker's jars come from Maven Central (`infra/kafka/pom.xml`, copied into the
git-ignored `.kafka/lib` by `fetch`, which `make setup` runs); the broker runs from them on
Java 17 with `java -cp`, on loopback ports, with its storage formatted once under its own
directory. `start` returns once the broker answers metadata requests; `stop` ends it by the
process id it recorded. A production deployment points `stream.kafka.bootstrap_servers` at
its own Kafka cluster instead (docs/operations.md).
"""

from __future__ import annotations

import base64
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import psutil
import typer
from rich.console import Console

from actors.paths import REPO_ROOT

POM = REPO_ROOT / "infra" / "kafka" / "pom.xml"
LIB = REPO_ROOT / ".kafka" / "lib"
kafka_app = typer.Typer(help="A local Kafka broker (KRaft) for development.", no_args_is_help=True)
console = Console()


class BrokerError(RuntimeError):
    """The broker could not be fetched, started or stopped (the message says which step)."""


def jars_present(lib: Path = LIB) -> bool:
    return any(lib.glob("kafka_2.13-*.jar")) and any(lib.glob("log4j-slf4j-impl-*.jar"))


def fetch_jars(lib: Path = LIB, quiet: bool = True) -> Path:
    """Copy the broker's jars from Maven into `lib` (a no-op when they are there)."""
    if jars_present(lib):
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("fetch: Maven (mvn) is not installed (Debian package maven)")
    cmd = [mvn, "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={lib}"]
    done = subprocess.run([*cmd, "-q"] if quiet else cmd, capture_output=quiet, text=True)
    if done.returncode != 0 or not jars_present(lib):
        tail = (done.stdout or "")[-2000:] if quiet else ""
        raise BrokerError(f"fetch: mvn exited {done.returncode}\n{tail}")
    return lib


def cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what Kafka's
    `StorageTool random-uuid` prints), never starting with '-': Kafka's own `Uuid` draws
    again then, since the storage tool's parser reads `-t -x...` as a missing value (one id
    in 64: a CI run's broker failed to format that way)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


_LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


@dataclass
class KafkaBroker:
    """One broker-and-controller process on 127.0.0.1; everything it writes is under
    `directory` (config, data, log, pid file)."""

    directory: Path
    port: int = 9092
    controller_port: int = 9093
    heap_mb: int = 512
    partitions: int = 4  # for topics created on first use
    log_level: str = "warn"
    lib: Path = LIB

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.directory / "broker.pid"

    @property
    def log_file(self) -> Path:
        return self.directory / "broker.log"

    def _config(self) -> Path:
        """server.properties for one node: a single replica of the internal topics (or
        consumer groups and transactions wait forever for more), and no initial rebalance
        delay (a group forms at once)."""
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.directory / "data"),
            "num.partitions": str(self.partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "8",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
        }
        path = self.directory / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        log4j = self.directory / "log4j2.properties"
        log4j.write_text(_LOG4J.format(log=self.log_file, level=self.log_level))
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("start: Java is not installed (17 or newer)")
        return [
            java, f"-Xmx{self.heap_mb}m", "-Xms64m", "-XX:+UseSerialGC",
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            "-cp", f"{self.lib}/*", main, *args,
        ]  # fmt: skip

    def pid(self) -> int | None:
        """The recorded process id, if that process is alive."""
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def start(self, timeout_s: float = 90.0) -> int:
        """Format the storage on first start, start the broker, wait until it answers."""
        if not jars_present(self.lib):
            raise BrokerError(f"start: no broker jars in {self.lib} (run `fraud kafka fetch`)")
        if self.pid() is not None:
            raise BrokerError(f"start: a broker recorded in {self.pid_file} is running")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self._config()
        if not (self.directory / "data" / "meta.properties").exists():
            fmt = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id(),
                             "-c", str(config))  # fmt: skip
            done = subprocess.run(fmt, capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise BrokerError(f"format: {done.stdout[-500:]}{done.stderr[-500:]}")
        out = (self.directory / "stdout.log").open("ab")
        proc = subprocess.Popen(
            self._java("kafka.Kafka", str(config)),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.pid_file.write_text(str(proc.pid))
        try:
            self.wait_ready(proc, timeout_s)
        except BrokerError:
            self.stop()
            raise
        return proc.pid

    def wait_ready(self, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
        """Until the port accepts and the broker answers a metadata request."""
        from confluent_kafka.admin import AdminClient

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BrokerError(f"start: the broker exited {proc.returncode} ({self.log_file})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
                if admin.list_topics(timeout=5).brokers:
                    return
            except Exception:  # not up yet: try again until the deadline
                pass
            time.sleep(0.2)
        raise BrokerError(f"start: no answer on {self.bootstrap} in {timeout_s:.0f} s")

    def stop(self, timeout_s: float = 30.0, hard: bool = False) -> bool:
        """SIGTERM (a clean shutdown), or SIGKILL when `hard` or after `timeout_s`; only the
        process this broker recorded. False if none was running."""
        pid = self.pid()
        if pid is None:
            return False
        proc = psutil.Process(pid)
        proc.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
        try:
            proc.wait(timeout_s)  # reaps it when it is this process's child
        except psutil.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        self.pid_file.unlink(missing_ok=True)
        return True


Dir = Annotated[Path, typer.Option(help="Config, data, log and pid file of the broker.")]
Port = Annotated[int, typer.Option(help="Client port on 127.0.0.1 (the controller: port+1).")]


@kafka_app.command("fetch")
def fetch_command() -> None:
    """Copy the broker's jars from Maven Central into .kafka/lib (once)."""
    try:
        lib = fetch_jars(quiet=False)
    except BrokerError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=1) from None
    console.print(f"broker jars in {lib}")


@kafka_app.command("start")
def start_command(directory: Dir = Path("data/kafka"), port: Port = 9092) -> None:
    """Start the broker in the background; returns once it answers."""
    broker = KafkaBroker(directory.resolve(), port, port + 1)
    try:
        fetch_jars()
        pid = broker.start()
    except BrokerError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=1) from None
    console.print(f"kafka broker {broker.bootstrap} (pid {pid}, log {broker.log_file})")


@kafka_app.command("stop")
def stop_command(directory: Dir = Path("data/kafka")) -> None:
    """Stop the broker started with the same --directory (by its recorded process id)."""
    stopped = KafkaBroker(directory.resolve()).stop()
    console.print("stopped" if stopped else "no broker running there")
