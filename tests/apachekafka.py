"""Apache Kafka in KRaft mode for the test suite, from Maven Central: no download, no Docker.

``mvn`` resolves ``deploy/kafka/pom.xml`` (the jars are cached in ``~/.m2``, the classpath
beside the virtualenv); each node is ``java kafka.Kafka`` on a storage directory formatted by
``kafka.tools.StorageTool``, every node both broker and controller. A node can be paused
(SIGSTOP), resumed, killed and started again on the same directory and ports.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka.admin import AdminClient

from wayline.streams.broker import die_with_parent, free_port

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "deploy" / "kafka" / "pom.xml"
JVM = ["-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-Djava.awt.headless=true"]


class ApacheKafkaMissing(RuntimeError):
    """Java or Maven is not installed, or Maven Central could not be reached."""


def classpath() -> str:
    """The broker's classpath, resolved by Maven once per version of the pom."""
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise ApacheKafkaMissing(
                f"the Apache Kafka test broker needs `{tool}` (Java 17+ and Maven) on PATH"
            )
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    cached = ROOT / ".venv" / f"apache-kafka-{digest}.classpath"
    if cached.exists():
        return cached.read_text().strip()
    cached.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), "dependency:build-classpath",
         f"-Dmdep.outputFile={cached}"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if result.returncode != 0 or not cached.exists():
        cached.unlink(missing_ok=True)
        said = (result.stdout + result.stderr)[-3000:]
        raise ApacheKafkaMissing(f"mvn could not resolve {POM.relative_to(ROOT)}:\n{said}")
    return cached.read_text().strip()


@dataclass
class Node:
    node_id: int
    port: int
    controller_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class ApacheKafka:
    """A KRaft cluster of ``size`` combined broker+controller nodes under ``root``."""

    root: Path
    size: int = 1
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = [
            Node(i + 1, free_port(), free_port(), self.root / f"node-{i + 1}")
            for i in range(self.size)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def start(self, timeout_s: float = 90.0) -> None:
        cp = classpath()
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        for node in self.nodes:
            node.directory.mkdir(parents=True, exist_ok=True)
            properties = self._properties(node)
            # ``--cluster-id=`` joined: a random id may begin with "-", which a separate
            # argument would have read as an option (one start in 64 failed)
            formatted = subprocess.run(
                ["java", *JVM, "-cp", cp, "kafka.tools.StorageTool", "format",
                 f"--cluster-id={cluster_id}", "-c", str(properties)],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            if formatted.returncode != 0:
                raise RuntimeError(f"kafka-storage format failed: {formatted.stderr[-2000:]}")
        for node in self.nodes:
            self.start_node(node)
        self.wait_ready(timeout_s)

    def start_node(self, node: Node) -> None:
        log = open(node.directory / "broker.log", "ab")  # noqa: SIM115 - handed to the child
        parent = os.getpid()
        node.process = subprocess.Popen(
            ["java", *JVM, "-cp", classpath(), "kafka.Kafka",
             str(node.directory / "server.properties")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=lambda: die_with_parent(parent),
        )  # fmt: skip
        log.close()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Every running node is a broker in the cluster's metadata and a controller is known."""
        running = {n.node_id for n in self.nodes if n.process and n.process.poll() is None}
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None:
                    tail = (node.directory / "broker.log").read_text(errors="replace")[-2000:]
                    raise ApacheKafkaMissing(f"Kafka node {node.node_id} exited:\n{tail}")
            try:
                admin = AdminClient({"bootstrap.servers": self.bootstrap, "log_level": 0})
                metadata = admin.list_topics(timeout=2)
                if running <= set(metadata.brokers) and metadata.controller_id >= 0:
                    return
            except Exception:
                pass
            time.sleep(0.3)
        raise ApacheKafkaMissing(f"Apache Kafka at {self.bootstrap} not ready in {timeout_s}s")

    def kill(self, node: Node) -> None:
        assert node.process is not None
        node.process.kill()
        node.process.wait(30)
        node.process = None

    def pause(self, node: Node) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGSTOP)

    def resume(self, node: Node) -> None:
        assert node.process is not None
        node.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)
                node.process.terminate()
        for node in self.nodes:
            if node.process is not None:
                try:
                    node.process.wait(30)
                except subprocess.TimeoutExpired:
                    node.process.kill()
                    node.process.wait(10)
                node.process = None

    def _properties(self, node: Node) -> Path:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        replicas = min(3, self.size)
        lines = {
            "process.roles": "broker,controller",
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{node.address},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{node.address}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.directory / "data",
            "num.partitions": 1,
            "default.replication.factor": replicas,
            "min.insync.replicas": max(1, replicas - 1),
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": 5,
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": max(1, replicas - 1),
            "transaction.state.log.num.partitions": 5,
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": max(1, replicas - 1),
            "group.initial.rebalance.delay.ms": 0,
            "num.network.threads": 2,
            "num.io.threads": 2,
        }
        path = node.directory / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        return path
