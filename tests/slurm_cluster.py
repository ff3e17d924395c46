"""Bring up and tear down a real single-node SLURM cluster on the test machine (for tests/test_slurm.py).

What it does, in order (:func:`start_cluster`):

1. Checks that it can work here (:func:`unavailable_reason`): root, the Debian packages' binaries
   (``munged``, ``slurmctld``, ``slurmd``, ``sbatch``, ``squeue``, ``scontrol``, ``sinfo``), no SLURM daemon
   already running, no foreign ``/etc/slurm/slurm.conf``.
2. Starts a private ``munged`` (as user ``munge``, own key and socket in a temporary folder) so that a
   system munge, if any, is left alone.
3. Writes ``/etc/slurm/slurm.conf`` and ``/etc/slurm/gres.conf``: one node (this host, ``hostname -s``)
   with its real CPU count and memory and one fake GPU (``Gres=gpu:fake:1``, ``File=/dev/null``), one
   partition ``debug``. The config must live there: the SLURM executor plugin drops ``SLURM_CONF`` from the
   job environment, so jobs and their ``srun`` read the default path.
4. Starts ``slurmctld -D`` and ``slurmd -D`` in the foreground (no systemd here), so this module holds their
   PIDs, and waits until the node is ``idle``.

:meth:`SlurmCluster.stop` cancels any job still queued, stops only the three daemons it started (by PID,
SIGTERM then SIGKILL), removes the two config files it wrote and its temporary folder.

Every wait has a timeout. Failures raise :class:`ClusterUnavailable` whose message says why (with the tail
of the daemon logs), so the test can skip with a clear reason.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SLURM_CONF = Path("/etc/slurm/slurm.conf")
GRES_CONF = Path("/etc/slurm/gres.conf")
PARTITION = "debug"
# Written as the first line of both config files: a file carrying it is ours (possibly left behind by a
# killed run) and may be overwritten; any other existing file belongs to a real installation.
MARKER = "# written by rnr tests/slurm_cluster.py for a throwaway test cluster; safe to delete"
REQUIRED_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "scancel")
# Harmless character devices present on every Linux, standing in for /dev/nvidia0, /dev/nvidia1, ...
FAKE_GPU_DEVICES = ("/dev/null", "/dev/zero", "/dev/full")
APT_HINT = "apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge"


class ClusterUnavailable(RuntimeError):
    """SLURM cannot be started on this machine; the message says why."""


def _which(name: str) -> str | None:
    # The daemons live in /usr/sbin, which is not on every PATH (e.g. a non-login shell).
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _running_daemons(names: tuple[str, ...] = ("slurmctld", "slurmd")) -> list[str]:
    """Names (with PIDs) of processes already running whose command name is one of `names`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if comm in names:
            found.append(f"{comm} (pid {proc.name})")
    return found


def _is_ours(path: Path) -> bool:
    try:
        return path.read_text().startswith(MARKER)
    except OSError:
        return False


def unavailable_reason() -> str | None:
    """Why a test cluster cannot be started here, or None if it can be tried."""
    if not Path("/proc").is_dir():
        return "SLURM test cluster needs Linux"
    if os.geteuid() != 0:
        return f"SLURM test cluster needs root (to write /etc/slurm and start daemons); running as uid {os.geteuid()}"
    missing = [b for b in REQUIRED_BINARIES if _which(b) is None]
    if missing:
        return f"SLURM/munge not installed (missing {', '.join(missing)}); install with: {APT_HINT}"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "user 'munge' does not exist (the munge package creates it)"
    running = _running_daemons()
    if running:
        return f"a SLURM daemon is already running here ({', '.join(running)}); not touching a live cluster"
    for path in (SLURM_CONF, GRES_CONF):
        if path.exists() and not _is_ours(path):
            return f"{path} exists and was not written by this test; not overwriting a real SLURM configuration"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_hardware() -> tuple[int, int]:
    """(CPUs, RealMemory in MB) as slurmd itself detects them, so the node is never marked invalid."""
    out = subprocess.run(
        [_which("slurmd") or "slurmd", "-C"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    fields = dict(item.split("=", 1) for item in out.split() if "=" in item)
    return int(fields["CPUs"]), int(fields["RealMemory"])


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} not readable)"
    return "\n".join(lines[-n:])


@dataclass
class SlurmCluster:
    """A running single-node cluster; use :func:`start_cluster` to get one and :meth:`stop` to end it."""

    host: str
    workdir: Path  # temporary folder: munge key/socket, SLURM state, spool and daemon logs
    cpus: int
    memory_mb: int
    gpus: int = 1
    partition: str = PARTITION
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)

    def log_tails(self) -> str:
        """The last lines of each daemon's log (munged logs to its stdout file in the foreground)."""
        logs = [self.workdir / name for name in ("munged.stdout", "slurmctld.log", "slurmd.log")]
        return "\n".join(f"--- {log.name} ---\n{_tail(log)}" for log in logs)

    def node_state(self) -> str:
        """The node's state as sinfo prints it ("idle", "mixed", "drained", ...), or "" if no answer."""
        return _query(["sinfo", "--noheader", "--Node", "--format=%T", "--nodes", self.host])

    def stop(self) -> None:
        """Cancel remaining jobs, stop our daemons (by PID), remove our config files and temp folder.

        Safe to call more than once and on a half-started cluster.
        """
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            # Jobs left by a failed test would keep slurmstepd processes alive after slurmd stops.
            subprocess.run(["scancel", "--full", f"--partition={self.partition}"], capture_output=True, timeout=15)
            time.sleep(1)
        # Reverse start order: slurmd, slurmctld, then munged (they authenticate through it).
        for name in reversed(list(self.processes)):
            proc = self.processes.pop(name)
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=15)
        for path in self.written:
            if _is_ours(path):
                path.unlink(missing_ok=True)
        self.written.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _query(argv: list[str]) -> str:
    """stdout of a quick SLURM client command, stripped; "" if it fails or hangs (daemon not up yet)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=15).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _start(cluster: SlurmCluster, name: str, argv: list[str], **kwargs) -> None:
    """Start one daemon in the foreground, its stdout and stderr in <workdir>/<name>.stdout."""
    with open(cluster.workdir / f"{name}.stdout", "wb") as log:  # the child keeps its own copy
        cluster.processes[name] = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a Ctrl-C in pytest reaches the test, which then stops the daemons in order.
            start_new_session=True,
            **kwargs,
        )


def _wait(predicate, timeout: float, what: str, cluster: SlurmCluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in cluster.processes.items():
            if proc.poll() is not None:
                raise ClusterUnavailable(
                    f"{name} exited with code {proc.returncode} while waiting for {what}\n"
                    f"{_tail(cluster.workdir / f'{name}.stdout')}\n{cluster.log_tails()}"
                )
        if predicate():
            return
        time.sleep(0.5)
    raise ClusterUnavailable(f"timed out after {timeout:.0f} s waiting for {what}\n{cluster.log_tails()}")


def _slurm_conf(cluster: SlurmCluster, munge_socket: Path, ctld_port: int, slurmd_port: int) -> str:
    w = cluster.workdir
    node = (
        f"NodeName={cluster.host} NodeAddr=127.0.0.1 CPUs={cluster.cpus} RealMemory={cluster.memory_mb} "
        f"Gres=gpu:fake:{cluster.gpus} State=UNKNOWN"
    )
    return f"""{MARKER}
ClusterName=rnrtest
SlurmctldHost={cluster.host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# Our private munged, so a system munge (if any) is neither needed nor disturbed.
AuthInfo=socket={munge_socket}
StateSaveLocation={w}/state
SlurmdSpoolDir={w}/spool
SlurmctldPidFile={w}/slurmctld.pid
SlurmdPidFile={w}/slurmd.pid
SlurmctldLogFile={w}/slurmctld.log
SlurmdLogFile={w}/slurmd.log
# No cgroups, no systemd, no accounting database in a test container.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Finished jobs stay visible to squeue/scontrol for 5 minutes: the executor's squeue status checks and
# the test's inspection of the GPU requests rely on it.
MinJobAge=300
ReturnToService=2
GresTypes=gpu
{node}
PartitionName={cluster.partition} Nodes={cluster.host} Default=YES MaxTime=INFINITE State=UP
"""


def _write_config(cluster: SlurmCluster, path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cluster.written.append(path)
    path.write_text(text)


def start_cluster(gpus: int = 1, node_timeout: float = 60.0) -> SlurmCluster:
    """Start munged, slurmctld and slurmd for a one-node cluster with `gpus` fake GPUs; return it when idle.

    Raises ClusterUnavailable (with the reason and the daemon log tails) if anything fails; in that case
    whatever was started has already been stopped again.
    """
    if not 1 <= gpus <= len(FAKE_GPU_DEVICES):
        raise ValueError(f"gpus must be 1..{len(FAKE_GPU_DEVICES)}, got {gpus}")
    reason = unavailable_reason()
    if reason:
        raise ClusterUnavailable(reason)
    try:
        cpus, memory_mb = _node_hardware()
    except (OSError, subprocess.SubprocessError, KeyError, ValueError) as exc:
        raise ClusterUnavailable(f"'slurmd -C' could not describe this machine: {exc}") from exc
    workdir = Path(tempfile.mkdtemp(prefix="rnr-slurm-"))
    cluster = SlurmCluster(
        host=socket.gethostname().split(".")[0], workdir=workdir, cpus=cpus, memory_mb=memory_mb, gpus=gpus
    )
    try:
        _start_daemons(cluster, node_timeout)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_daemons(cluster: SlurmCluster, node_timeout: float) -> None:
    w = cluster.workdir
    munge = pwd.getpwnam("munge")
    # munged insists that its key, socket and state are owned by its user and not writable by others.
    w.chmod(0o755)
    munge_dir = w / "munge"
    munge_dir.mkdir()
    munge_dir.chmod(0o755)  # clients (sbatch, slurmstepd) must reach the socket
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    for p in (munge_dir, key):
        os.chown(p, munge.pw_uid, munge.pw_gid)
    munge_socket = munge_dir / "munge.socket"
    _start(
        cluster,
        "munged",
        [
            _which("munged"),
            "--foreground",
            f"--socket={munge_socket}",
            f"--key-file={key}",
            f"--pid-file={munge_dir / 'munged.pid'}",
            f"--seed-file={munge_dir / 'munged.seed'}",
        ],  # logs to stderr when -F
        user=munge.pw_uid,
        group=munge.pw_gid,
    )
    _wait(munge_socket.exists, 20, "the munge socket", cluster)

    for sub in ("state", "spool"):
        (w / sub).mkdir()
    _write_config(cluster, SLURM_CONF, _slurm_conf(cluster, munge_socket, _free_port(), _free_port()))
    # Fake GPUs: File= must name one character device per GPU (without it the node is marked invalid; with
    # a plain file SLURM allocates the GPU but sets no CUDA_VISIBLE_DEVICES). Nothing opens them.
    devices = FAKE_GPU_DEVICES[: cluster.gpus]
    _write_config(
        cluster,
        GRES_CONF,
        f"{MARKER}\n" + "".join(f"NodeName={cluster.host} Name=gpu Type=fake File={d}\n" for d in devices),
    )

    _start(cluster, "slurmctld", [_which("slurmctld"), "-D", "-i"])
    _wait(lambda: "UP" in _query(["scontrol", "ping"]), 30, "slurmctld to answer 'scontrol ping'", cluster)
    _start(cluster, "slurmd", [_which("slurmd"), "-D"])
    _wait(lambda: cluster.node_state() == "idle", node_timeout, f"node {cluster.host} to become idle", cluster)
