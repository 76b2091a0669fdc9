"""Test hosts on one machine: network namespaces joined by veth to a bridge.

    with netns.Hosts(2, rate="1gbit") as hosts:
        subprocess.run([mpirun, *hosts.mpirun_args(), "-np", "2", cria, ...])

Each host is a network namespace with its own stack and one address on a
bridge in the root namespace, as boards on a switch. mpirun runs in the root
namespace and starts its daemons through `plm_rsh_agent`: a two-line script
that runs the command in the namespace owning the host's address (where a
real cluster would ssh). The ranks talk over TCP on the bridge subnet only
(`btl tcp,self`: no shared memory between "hosts"), so every exchange crosses
veth, the bridge and two network stacks. `rate` (tc's units, e.g. "1gbit")
shapes each host's outgoing packets with a token bucket (tbf): the link's
bandwidth, as a board's Ethernet port. A delay (netem) cannot be added on
kernels built without sch_netem, as this project's VM is
(/proc/config.gz: no CONFIG_NET_SCH_NETEM); the latency a real link adds is
then arithmetic over the exchanges counted per token (bench/mpi_bench.py).

Needs root (ip netns, ip link, tc). `available()` says whether it can run
here and why not.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def available():
    """(True, "") when namespaces can be made here, else (False, reason)."""
    if os.geteuid() != 0:
        return False, "needs root (ip netns)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return False, f"{tool} not found (iproute2)"
    name = f"crprobe{os.getpid() % 100000}"
    p = _ip("netns", "add", name, check=False)
    if p.returncode != 0:
        return False, f"ip netns add failed: {p.stderr.strip()}"
    _ip("netns", "del", name, check=False)
    return True, ""


class Hosts:
    def __init__(self, n, rate=None, burst="4kb"):
        self.n = n
        self.rate = rate
        self.burst = burst
        tag = os.getpid() % 10000
        self.tag = f"cr{tag}"
        self.subnet = f"10.231.{tag % 250}"
        self.ns = [f"{self.tag}n{i}" for i in range(n)]
        self.addrs = [f"{self.subnet}.{11 + i}" for i in range(n)]
        self.bridge = f"{self.tag}br"
        self.dir = None

    def __enter__(self):
        # A SIGTERM (timeout, kill) unwinds through __exit__ instead of
        # leaving the namespaces and the bridge behind.
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _create(self):
        self.close()  # what a killed run with the same pid left behind
        self.dir = tempfile.mkdtemp(prefix="cria-netns-")
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, (ns, addr) in enumerate(zip(self.ns, self.addrs)):
            host_end, ns_end = f"{self.tag}h{i}", f"{self.tag}v{i}"
            _ip("netns", "add", ns)
            _ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            _ip("link", "set", host_end, "master", self.bridge, "up")
            _ip("link", "set", ns_end, "netns", ns)
            _ip("-n", ns, "link", "set", ns_end, "name", "eth0")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        self.set_rate(self.rate)
        with open(os.path.join(self.dir, "hostfile"), "w") as f:
            f.writelines(f"{a} slots=1\n" for a in self.addrs)
        agent = os.path.join(self.dir, "agent")
        with open(agent, "w") as f:
            f.write("#!/bin/sh\n# mpirun's remote shell: the host's namespace instead of ssh.\n")
            f.write('host=$1\nshift\ncase "$host" in\n')
            for ns, addr in zip(self.ns, self.addrs):
                f.write(f"  {addr}) ns={ns} ;;\n")
            f.write('  *) echo "agent: unknown host $host" >&2; exit 1 ;;\nesac\n')
            f.write('exec ip netns exec "$ns" /bin/sh -c "$*"\n')
        os.chmod(agent, 0o755)

    def set_rate(self, rate):
        """Token-bucket shaping of every host's outgoing packets (None: none)."""
        self.rate = rate
        for ns in self.ns:
            subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth0", "root"],
                           capture_output=True)
            if rate:
                # A small burst (a few frames) paces every message at the rate,
                # as a link serializes it; a large one would let a 16 KB
                # exchange through at memory speed once the bucket refilled.
                # latency bounds the queue (packets wait, never drop, here).
                subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "eth0", "root", "tbf",
                                "rate", rate, "burst", self.burst, "latency", "400ms"], check=True,
                               capture_output=True)

    def mpirun_args(self):
        net = f"{self.subnet}.0/24"
        return ["--hostfile", os.path.join(self.dir, "hostfile"),
                "--mca", "plm_rsh_agent", os.path.join(self.dir, "agent"),
                "--mca", "plm_rsh_no_tree_spawn", "1",
                "--mca", "btl", "tcp,self",
                "--mca", "btl_tcp_if_include", net, "--mca", "oob_tcp_if_include", net]

    def sent_bytes(self):
        """Bytes the hosts have sent onto the bridge so far (their veths' far ends)."""
        total = 0
        for i in range(self.n):
            with open(f"/sys/class/net/{self.tag}h{i}/statistics/rx_bytes") as f:
                total += int(f.read())
        return total

    def kill_all(self):
        """SIGKILL every process still running in the hosts' namespaces."""
        for ns in self.ns:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass

    def close(self):
        self.kill_all()
        for ns in self.ns:
            _ip("netns", "del", ns, check=False)  # takes its veth pair with it
        _ip("link", "del", self.bridge, check=False)
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
