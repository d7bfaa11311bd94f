"""A real SLURM cluster for the tests: munged, slurmctld and slurmd started from a generated slurm.conf.

Everything lives in one temporary folder (configuration, state, spool, logs, munge key and socket); the daemons are
children of the test process and are stopped by pid. `SlurmCluster.local` runs one node on localhost;
`SlurmCluster.in_namespaces` runs one slurmd per node, each in its own network namespace and UTS namespace, joined by a
bridge, so a multi-node job crosses a real network between two hostnames. Needs root and Debian's `slurmd slurmctld
slurm-client munge` (the noxfile's `slurm` session installs them).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"}
SUBNET = "10.231.0"  # the only addresses the namespaced cluster creates and uses


def missing_requirements() -> str | None:
    """Why this machine cannot run a cluster, or None."""
    if os.geteuid() != 0:
        return "the SLURM cluster tests start slurmctld and slurmd as root; run them as root (CI does)"
    absent = [name for name in (*DAEMONS, "sbatch", "scontrol") if shutil.which(name) is None]
    if absent:
        return f"{', '.join(absent)} not found: `apt-get install slurmd slurmctld slurm-client munge` (.ci/run does)"
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


@dataclass
class Node:
    name: str
    address: str
    namespace: str | None = None  # a network namespace of its own, or the host's network


@dataclass
class SlurmCluster:
    folder: Path
    controller: Node
    nodes: list[Node]
    cpus: int
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @classmethod
    def local(cls, folder: Path) -> "SlurmCluster":
        """One node on this machine's loopback, named after the machine as slurmd expects."""
        host = Node(socket.gethostname().split(".")[0], "127.0.0.1")
        return cls(folder, host, [host], cpus=max(2, os.cpu_count() or 1))

    @classmethod
    def in_namespaces(cls, folder: Path, count: int) -> "SlurmCluster":
        """`count` nodes `node1`..., each in a network namespace of its own, on a bridge with the controller."""
        tag = os.getpid()
        controller = Node(socket.gethostname().split(".")[0], f"{SUBNET}.1")
        nodes = [
            Node(f"node{index}", f"{SUBNET}.{10 + index}", f"slurm-test-{tag}-{index}") for index in range(1, count + 1)
        ]
        return cls(folder, controller, nodes, cpus=max(2, os.cpu_count() or 1))

    @property
    def environment(self) -> dict[str, str]:
        """Variables that point SLURM's commands at this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.folder / "slurm.conf")}

    def start(self) -> None:
        """Start munged, slurmctld and every slurmd (namespaced nodes: after `create_network`)."""
        for name in ("state", "log", "munge", *(f"spool/{node.name}" for node in self.nodes)):
            (self.folder / name).mkdir(parents=True, exist_ok=True)
        for folder in (self.folder, self.folder / "munge"):
            folder.chmod(0o755)  # munged wants its socket reachable by all, and writable by root only
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        (self.folder / "slurm.conf").write_text(self.configuration())
        munge = self.folder / "munge"
        self.spawn(
            "munged",
            [
                "munged",
                "-F",
                "-f",
                f"--socket={munge}/socket",
                f"--key-file={key}",
                f"--log-file={munge}/munged.log",
                f"--pid-file={munge}/munged.pid",
                f"--seed-file={munge}/munged.seed",
            ],
        )
        self.wait_until((munge / "socket").exists, "munged's socket")
        self.spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.folder / "slurm.conf")])
        self.wait_until(lambda: self.query("scontrol", "ping").returncode == 0, "slurmctld to answer scontrol ping")
        for node in self.nodes:
            slurmd = f"exec slurmd -D -N {node.name} -f {self.folder / 'slurm.conf'}"
            if node.namespace is None:
                command = ["sh", "-c", slurmd]
            else:
                # Its own network, hostname and /etc/hosts, as on a real node: Lightning and gloo find nodes by name.
                # (nsenter, not `ip netns exec`, which mounts a new /sys without the cgroup folder slurmd needs.)
                setup = f"mount --bind {self.folder / 'hosts'} /etc/hosts && hostname {node.name} && {slurmd}"
                command = ["nsenter", f"--net=/run/netns/{node.namespace}", "unshare", "--uts", "--mount"]
                command += ["sh", "-c", setup]
            self.spawn(f"slurmd-{node.name}", command)
        self.wait_until(self.nodes_idle, "every node to be idle in sinfo")

    def configuration(self) -> str:
        """slurm.conf for a container: no cgroups (proctrack/linuxproc, task/none), no accounting, root runs all."""
        folder = self.folder
        nodes = ",".join(node.name for node in self.nodes)
        return "\n".join(
            [
                f"ClusterName=test{os.getpid()}",
                f"SlurmctldHost={self.controller.name}({self.controller.address})",
                f"SlurmctldPort={free_port()}",
                f"SlurmdPort={free_port()}",
                f"AuthInfo=socket={folder}/munge/socket,cred_expire=20",  # a requeued job waits 20 s, not 120
                "SlurmUser=root",
                "SlurmdUser=root",
                f"StateSaveLocation={folder}/state",
                f"SlurmdSpoolDir={folder}/spool/%n",
                f"SlurmctldPidFile={folder}/slurmctld.pid",
                f"SlurmdPidFile={folder}/spool/slurmd-%n.pid",
                "SlurmctldDebug=info",
                "SlurmdDebug=info",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "JobAcctGatherType=jobacct_gather/none",
                "AccountingStorageType=accounting_storage/none",
                "JobCompType=jobcomp/none",
                "MpiDefault=none",
                "SwitchType=switch/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_CPU",
                "SchedulerType=sched/backfill",
                "SlurmdParameters=config_overrides",  # CPUs below, whatever this machine has
                "ReturnToService=2",
                "InactiveLimit=0",
                "KillWait=5",
                "MinJobAge=600",
                *(
                    f"NodeName={node.name} NodeAddr={node.address} CPUs={self.cpus} State=UNKNOWN"
                    for node in self.nodes
                ),
                f"PartitionName=test Nodes={nodes} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
                "",
            ]
        )

    def create_network(self) -> None:
        """A bridge with the controller's address, and one namespace per node on it with a hosts file naming all."""
        bridge = f"sb{os.getpid()}"[:15]
        hosts = "".join(f"{node.address} {node.name}\n" for node in [self.controller, *self.nodes])
        (self.folder / "hosts").write_text(f"127.0.0.1 localhost\n{hosts}")
        self.run_ip("link", "add", bridge, "type", "bridge")
        self.run_ip("addr", "add", f"{self.controller.address}/24", "dev", bridge)
        self.run_ip("link", "set", bridge, "up")
        for index, node in enumerate(self.nodes, start=1):
            assert node.namespace is not None
            outside, inside = f"{bridge}v{index}"[:15], f"{bridge}n{index}"[:15]
            self.run_ip("netns", "add", node.namespace)
            self.run_ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            self.run_ip("link", "set", outside, "master", bridge, "up")
            self.run_ip("link", "set", inside, "netns", node.namespace)
            within = ("netns", "exec", node.namespace, "ip")
            self.run_ip(*within, "addr", "add", f"{node.address}/24", "dev", inside)
            self.run_ip(*within, "link", "set", inside, "up")
            self.run_ip(*within, "link", "set", "lo", "up")
        self.bridge = bridge

    def run_ip(self, *args: str) -> None:
        result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")

    def remove_network(self) -> None:
        for node in self.nodes:
            if node.namespace:
                subprocess.run(["ip", "netns", "delete", node.namespace], capture_output=True, check=False)
        if getattr(self, "bridge", None):
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)

    def spawn(self, name: str, command: list[str]) -> None:
        output = (self.folder / "log" / f"{name}.out").open("wb")
        self.processes[name] = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=self.environment)

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            exited = {
                name: process.returncode for name, process in self.processes.items() if process.poll() is not None
            }
            if exited or time.monotonic() > deadline:
                raise RuntimeError(f"waiting for {what}: daemons exited {exited}\n{self.log_tails()}")
            time.sleep(0.2)

    def nodes_idle(self) -> bool:
        listing = self.query("sinfo", "--noheader", "--Node", "--format=%N %t").stdout.split()
        return listing.count("idle") == len(self.nodes)

    def query(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, check=False, env=self.environment)

    def sbatch(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
        """Submit a job (`args` as given to sbatch) from `cwd`; returns its id."""
        environment = {**self.environment, **(env or {})}
        result = subprocess.run(
            ["sbatch", "--parsable", *args], cwd=cwd, capture_output=True, text=True, check=False, env=environment
        )
        assert result.returncode == 0, f"sbatch {' '.join(args)}: {result.stderr}\n{self.log_tails()}"
        return result.stdout.strip().split(";")[0]

    def job_states(self, job: str) -> dict[str, str]:
        """Each job (array tasks separately) of `job` with its state, from slurmctld's memory (MinJobAge)."""
        listing = self.query("scontrol", "show", "job", "--oneliner", job).stdout
        return {
            match["id"] + (f"_{match['task']}" if match["task"] else ""): match["state"]
            for match in re.finditer(
                r"JobId=(?P<id>\d+)(?:.*?ArrayTaskId=(?P<task>\d+))?.*?JobState=(?P<state>\w+)", listing
            )
        }

    def job_field(self, job: str, name: str) -> str:
        listing = self.query("scontrol", "show", "job", "--oneliner", job).stdout
        match = re.search(rf"\b{name}=(\S+)", listing)
        assert match, f"{name} of job {job} not in: {listing}"
        return match[1]

    def wait_for(self, job: str, timeout: float = 300) -> dict[str, str]:
        """Wait until every job of `job` has finished; returns their states."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.job_states(job)
            if states and set(states.values()) <= FINISHED:
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job} still {states} after {timeout} s\n{self.log_tails()}")
            time.sleep(0.5)

    def log_tails(self, lines: int = 25) -> str:
        """The end of every daemon's log, for failure messages."""
        parts = []
        for log in sorted((self.folder / "log").glob("*.out")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)

    def stop(self) -> None:
        """Cancel what still runs, then stop the daemons by pid, slurmd first, and remove the namespaces."""
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            self.query("scancel", "--full", "--partition=test")
            time.sleep(1)
        for name in reversed(list(self.processes)):
            process = self.processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.remove_network()


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A one-node SLURM cluster on this machine for the whole test session."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster.local(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def two_node_slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """Two SLURM nodes, `node1` and `node2`, each slurmd in its own network namespace: multi-node jobs for real."""
    reason = missing_requirements() or (None if shutil.which("ip") else "`ip` (iproute2) not found")
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster.in_namespaces(tmp_path_factory.mktemp("slurm2"), count=2)
    try:
        try:
            cluster.create_network()
        except RuntimeError as error:
            pytest.skip(f"network namespaces do not work here, so no second node: {error}")
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
