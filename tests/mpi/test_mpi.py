#!/usr/bin/env python3
"""One model across the ranks of an MPI job (runtime/dist), end to end.

    /usr/bin/python3 tests/mpi/test_mpi.py MPIRUN BUILD/bin/cria WORKDIR

Every rank runs on this machine (mpirun --oversubscribe, one thread each).
The models are the project's random-weight reference checkpoints with 3
layers (a Llama 3.1 layout and Falcon-7B's two-norm parallel layout), so
2 and 3 ranks each hold real layers. Checks:
  - greedy text of 2 and 3 ranks (even and uneven splits) equals one
    process; so do sampled num_return_sequences (the KV row copies cross
    ranks) and a --prompts-file batch (several sequences per forward);
  - a long batch goes down the chain as micro-batches (rank 0's counts),
    with the same text; --micro-batch 0 sends whole batches;
  - perplexity of a q4 file equals one process's;
  - a rank killed (SIGKILL) or frozen (SIGSTOP: a hung board or a cut link)
    mid-generation ends every rank within 30 s, the frozen case with
    rank 0's own message;
  - different files on different ranks are refused with a message;
  - cria serve across 2 ranks (both splits) answers two concurrent greedy
    requests as one process does;
  - without --layer-split, ranks whose free memory differs (CRIA_MEM_AVAILABLE
    per rank) get layers in proportion, with the same text.
--split tensors (every rank holds 1/N of each block; runtime/model/shard.h):
  - greedy text of 2 and 4 ranks equals one process on the f32 fixtures:
    the Llama 3.1 layout (GQA; 4 ranks replicate its 2 KV heads), Falcon
    RW (ALiBi slopes per rank's heads, biases, 12 heads: 2 and 3 ranks),
    Falcon-40B's two-norm parallel block (GQA) and Falcon2-11B's multi-query
    one-norm parallel block (its single KV head replicated on 2 and 4 ranks);
  - sampled num_return_sequences (f32 cache rows) and greedy text with a
    q8 KV cache equal one process;
  - perplexity of a q4 file (Falcon-40B layout) within 0.01% of one
    process (2 and 4 ranks), and of f32 Falcon RW (its biases) within 1e-4;
  - a killed or frozen rank ends the job within 30 s with rank 0's message;
  - heads that do not divide, --layer-split with tensors, and different
    files are refused at start with a message naming the numbers.
Across a network stack (as root; scripts/pylib/netns.py): 2 ranks in
separate network namespaces joined by veth through a bridge, TCP only, for
both splits: greedy text equals one process and the hidden states crossed
the bridge (its byte counters).
"""
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MPIRUN = sys.argv[1]
CRIA = os.path.abspath(sys.argv[2])
WORK = os.path.abspath(sys.argv[3])
ENV = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}
results = []


def case(name):
    def wrap(fn):
        t0 = time.time()
        try:
            fn()
            results.append((name, None, time.time() - t0))
        except AssertionError as e:
            results.append((name, str(e) or "assertion failed", time.time() - t0))
        except Exception as e:  # noqa: BLE001 - report, keep going
            results.append((name, f"{type(e).__name__}: {e}", time.time() - t0))
        return fn
    return wrap


def run(args, ranks=None, mpi_args=(), timeout=120, env=None):
    """cria ARGS in one process (ranks None) or under mpirun -np RANKS."""
    cmd = [CRIA] + args if ranks is None else [MPIRUN, "--oversubscribe", *mpi_args, "-np", str(ranks), CRIA] + args
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env={**ENV, **(env or {})})
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"), time.time() - t0


def left_over(path):
    """cria processes still running on `path` (a model file no other test uses)."""
    p = subprocess.run(["pgrep", "-f", path], capture_output=True)
    return p.stdout.decode().split()


def model(preset, quant, layers=3):
    src = os.path.join(WORK, f"{preset}-{layers}")
    if not os.path.exists(os.path.join(src, "config.json")):
        subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_checkpoint.py"), "--preset", preset,
                        "--out", src, "--layers", str(layers)], check=True, stdout=subprocess.DEVNULL)
    out = os.path.join(WORK, f"{preset}-{layers}-{quant}.cria")
    if not os.path.exists(out):
        rc, _, err, _ = run(["convert", src, "-o", out, "--quant", quant])
        assert rc == 0, err
    return out


os.makedirs(WORK, exist_ok=True)
LLAMA = model("ref-llama31-scaled", "f32")
FALCON = model("ref-falcon-7b", "f32")
LLAMA_Q4 = model("ref-llama31-scaled", "q4")
T1 = ["-t", "1"]
TENSORS = ["--split", "tensors"]


def same_as_one_process(m, args, splits):
    rc, want, err, _ = run(args + T1)
    assert rc == 0 and want.strip(), f"one process failed: {err[-1500:]}"
    for ranks, extra in splits:
        rc, got, err, _ = run(args + T1 + extra, ranks)
        assert rc == 0, f"{ranks} ranks {extra}: exit {rc}: {err[-1500:]}"
        assert got == want, f"{ranks} ranks {extra} differ from one process:\n{got!r}\n{want!r}"


SPLITS = [(2, []), (3, []), (2, ["--layer-split", "1,2"]), (2, ["--layer-split", "2,1"])]

for name, m in (("llama", LLAMA), ("falcon", FALCON)):
    @case(f"{name}: greedy text of 2 and 3 ranks equals one process")
    def _(m=m):
        same_as_one_process(m, ["run", "-m", m, "-p", "The cat sat on the mat", "-n", "32", "--greedy", "--quiet"],
                            SPLITS)

    @case(f"{name}: greedy text with a q8 KV cache on 2 and 3 ranks equals one process")
    def _(m=m):
        same_as_one_process(m, ["run", "-m", m, "-p", "The cat sat on the mat", "-n", "24", "--greedy", "--quiet",
                                "--kv", "q8"], SPLITS[:2])

    @case(f"{name}: sampled num_return_sequences (KV rows copied on every rank) equal one process")
    def _(m=m):
        same_as_one_process(m, ["run", "-m", m, "-p", "Once upon", "-n", "16", "--do-sample", "--seed", "7",
                                "--num-return-sequences", "3", "--quiet"], SPLITS[:2])


@case("llama: a --prompts-file batch (several sequences per forward) equals one process")
def _():
    pf = os.path.join(WORK, "prompts.txt")
    with open(pf, "w") as f:
        f.write("one two three\nfour\nfive six seven eight nine\n")
    same_as_one_process(LLAMA, ["run", "-m", LLAMA, "--prompts-file", pf, "-n", "12", "--greedy", "--quiet"],
                        SPLITS[:2])


@case("layers: long batches go down the chain as micro-batches, text unchanged; --micro-batch 0 sends them whole")
def _():
    # Three prompts of 40-60 words: one prefill batch of ~150 tokens, which
    # rank 0 sends as 32+-token parts (a part goes on while the next is
    # computed). Rank 0 counts calls and parts (CRIA_MPI_STATS=1).
    pf = os.path.join(WORK, "long_prompts.txt")
    words = "the cat sat on a mat and the dog ran far away from home".split()
    with open(pf, "w") as f:
        for k in range(3):
            f.write(" ".join(words[(i * (k + 3)) % len(words)] for i in range(40 + 10 * k)) + "\n")
    args = ["run", "-m", LLAMA, "--prompts-file", pf, "-n", "8", "--greedy", "--quiet"] + T1
    rc, want, err, _ = run(args)
    assert rc == 0 and want.strip(), err[-1500:]
    for ranks, extra in ((2, []), (3, []), (2, ["--micro-batch", "0"])):
        rc, got, err, _ = run(args + extra, ranks, env={"CRIA_MPI_STATS": "1"})
        assert rc == 0, f"{ranks} ranks {extra}: {err[-1500:]}"
        assert got == want, f"{ranks} ranks {extra} differ from one process:\n{got!r}\n{want!r}"
        m = re.search(r"pipeline: (\d+) forward calls sent down the chain as (\d+) micro-batches", err)
        assert m, f"no pipeline counts in {err[-800:]!r}"
        calls, parts = int(m.group(1)), int(m.group(2))
        if extra:
            assert parts == calls, (calls, parts)
        else:
            assert parts >= calls + 3, f"{ranks} ranks: {calls} calls in only {parts} parts"


def ppl_same(args):
    """perplexity ARGS gives the same number on 1, 2 and 3 ranks."""
    def ppl(out):
        lines = [l for l in out.splitlines() if l.startswith("perplexity:")]
        assert lines, f"no perplexity line in {out[-500:]!r}"
        return float(lines[-1].split()[1])
    rc, out, err, _ = run(args)
    assert rc == 0, err[-1500:]
    want = ppl(out)
    for ranks in (2, 3):
        rc, out, err, _ = run(args, ranks)
        assert rc == 0, err[-1500:]
        got = ppl(out)
        # Every rank runs the same kernels on the same rows in the same
        # order, and hidden states cross ranks as raw f32 bytes, so the
        # sums are bit for bit those of one process: the only difference
        # allowed is the printed rounding (6 decimals, 5e-7), far inside
        # the 0.01% (which leaves room for hosts whose CPUs pick
        # different kernels).
        assert abs(got - want) <= 1e-6 and abs(got - want) <= 1e-4 * want, f"{ranks} ranks: {got} vs {want}"


def text_file():
    text = os.path.join(WORK, "text.txt")
    words = "the cat sat on a mat and the dog ran far away from home".split()
    with open(text, "w") as f:
        f.write(" ".join(words[(i * 7) % len(words)] for i in range(1500)))
    return text


@case("q4 perplexity of 2 and 3 ranks equals one process")
def _():
    text = text_file()
    # --llama-cpp-compat scores only the second half of each 256-token
    # chunk: its first two 64-token score batches want no logits, so rank 0
    # runs ahead of the other ranks (deferred replies) before the third.
    for args in (["perplexity", "-m", LLAMA_Q4, "-f", text, "--ctx", "64"] + T1,
                 ["perplexity", "-m", LLAMA_Q4, "-f", text, "--ctx", "256", "--llama-cpp-compat"] + T1):
        ppl_same(args)


@case("bench runs under 2 ranks and reports its speeds")
def _():
    rc, out, err, _ = run(["bench", "-m", LLAMA, "-p", "32", "-n", "8", "-r", "1", "--json"] + T1, 2)
    assert rc == 0, err[-1500:]
    r = json.loads(out)
    assert r["prefill_tok_s"] > 0 and r["decode_tok_s"] > 0, out


def mapped_rss_kib(pid, path):
    """Resident KiB of the mappings of `path` in process `pid`."""
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if head and "-" in head[0] and len(head) >= 5:  # a mapping's first line
                inside = line.rstrip().endswith(path)
            elif inside and line.startswith("Rss:"):
                total += int(head[1])
    return total


@case("each of 3 ranks touches only its own layers' pages of the mapped file (--weights map)")
def _():
    # A chat turn keeps every rank alive after real forward passes; then
    # each rank's resident pages of the file are counted. This llama has 3
    # equal layers of ~2.3 MiB f32 plus a 0.5 MiB embedding (read by rank 0)
    # and a 0.5 MiB head (read by the last rank) in a 7.8 MiB file, so each
    # rank should hold 0.30-0.37 of the file; a rank that touched every
    # layer would hold ~0.9 or more. The bounds 0.2 and 0.5 sit between.
    m = os.path.join(WORK, "rss.cria")
    if not os.path.exists(m):
        os.link(LLAMA, m)
    size_kib = os.path.getsize(m) / 1024
    p = subprocess.Popen([MPIRUN, "--oversubscribe", "-np", "3", CRIA, "chat", "-m", m, "--backend", "cpu",
                          "--weights", "map", "--max-new-tokens", "8", "--greedy"] + T1, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=ENV)
    try:
        p.stdin.write(b"hello\n")
        p.stdin.flush()
        got = b""
        while b"\n" not in got:  # the answer is printed: every rank has run its layers
            chunk = p.stdout.read1(4096)
            assert chunk, f"chat ended early: {p.stderr.read().decode()[-1500:]}"
            got += chunk
        pids = subprocess.run(["pgrep", "-f", f"^{CRIA} chat -m {m}"], capture_output=True).stdout.decode().split()
        assert len(pids) == 3, f"expected 3 ranks, found {pids}"
        shares = sorted(mapped_rss_kib(int(pid), m) / size_kib for pid in pids)
        print(f"resident share of the file per rank: {[round(s, 3) for s in shares]}")
        assert all(0.2 < s < 0.5 for s in shares), f"resident share of the file per rank: {shares}"
    finally:
        p.stdin.close()
        p.wait(timeout=60)


def says_timed_out(err):
    """Rank 0's message for a rank that stopped answering, and the job's end."""
    assert "cria: waiting for the other ranks timed out after 3 s" in err, err[-1500:]
    assert "ending every rank" in err, err[-1500:]


def fault(kind, mpi_args=(), tensors=False):
    """Rank 1 is killed or frozen after 4 messages: 3 ranks by layers, or 2 by tensors."""
    # A model file of its own, so leftover processes are easy to find.
    m = os.path.join(WORK, f"{'t' if tensors else ''}fault-{kind}.cria")
    if not os.path.exists(m):
        os.link(LLAMA, m)
    rc, out, err, secs = run(["run", "-m", m, "-p", "hello", "-n", "64", "--greedy", "--dist-timeout", "3"] + T1 +
                             (TENSORS if tensors else []), 2 if tensors else 3,
                             ["-x", f"CRIA_DIST_TEST_FAULT={kind}:4", *mpi_args], timeout=60)
    time.sleep(0.5)
    left = left_over(m)
    assert not left, f"processes left running: {left}"
    assert secs < 30, f"the job took {secs:.1f} s to end"
    return rc, err


@case("a killed rank ends the job within 30 s")
def _():
    # Open MPI's mpirun ends every rank when one dies and names it.
    rc, err = fault("kill")
    assert rc != 0, "exit status 0"
    assert "rank 1" in err and "signal 9" in err, err[-1500:]


@case("a killed rank under --enable-recovery: rank 0 says so and ends the job within 30 s")
def _():
    # mpirun leaves the job alone; rank 0's bounded wait notices.
    rc, err = fault("kill", ["--enable-recovery"])
    says_timed_out(err)


@case("a frozen rank (hung board, cut link): rank 0 says so and ends the job within 30 s")
def _():
    rc, err = fault("stop")
    assert rc != 0, "exit status 0"
    says_timed_out(err)


@case("different files on two ranks are refused at start")
def _():
    other = model("ref-llama31-scaled", "q4")
    cmd = [MPIRUN, "--oversubscribe", "-np", "1", CRIA, "run", "-m", LLAMA, "-p", "hi", "-n", "4", "-t", "1", ":",
           "-np", "1", CRIA, "run", "-m", other, "-p", "hi", "-n", "4", "-t", "1"]
    p = subprocess.run(cmd, capture_output=True, timeout=60, env=ENV)
    err = p.stderr.decode()
    assert p.returncode != 0, "exit status 0"
    assert "rank 1: " in err and "differs from rank 0's" in err, err[-1500:]
    assert not p.stdout.strip(), f"generated anyway: {p.stdout!r}"


@case("a bad --layer-split is refused with a message")
def _():
    rc, out, err, _ = run(["run", "-m", LLAMA, "-p", "hi", "-n", "4", "--layer-split", "2,2"] + T1, 2)
    assert rc != 0 and "--layer-split adds up to 4 layers but the model has 3" in err, err[-1500:]
    rc, out, err, _ = run(["run", "-m", LLAMA, "-p", "hi", "--layer-split", "1,2"] + T1)
    assert rc != 0 and "apply under mpirun" in err, err[-1500:]


def serve_answers(ranks, extra, prompts):
    """Starts cria serve (--parallel 2) in one process or under mpirun, sends
    the prompts at once as greedy /v1/completions, returns the texts in
    order, then stops it with SIGTERM (bounded)."""
    import threading
    import urllib.request
    cmd = [CRIA, "serve", "-m", LLAMA, "--port", "0", "--parallel", "2"] + T1 + extra
    if ranks:
        cmd = [MPIRUN, "--oversubscribe", "-np", str(ranks)] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    try:
        line = proc.stdout.readline().decode()
        assert "listening on http://" in line, f"no listening line: {line!r} {proc.stderr.read(3000) if proc.poll() is not None else ''}"
        url = line.split("listening on ")[1].strip()
        texts = [None] * len(prompts)

        def ask(i):
            body = json.dumps({"prompt": prompts[i], "max_tokens": 24, "temperature": 0}).encode()
            req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                texts[i] = json.loads(r.read())["choices"][0]["text"]
        threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(prompts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return texts
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("serve did not stop within 30 s of SIGTERM")


@case("serve across 2 ranks, both splits: two requests at once (two slots in each batch) answer as one process")
def _():
    prompts = ["The cat sat on the mat", "Once upon a time"]
    want = serve_answers(0, [], prompts)
    assert all(t for t in want), want
    for split in ("layers", "tensors"):
        got = serve_answers(2, ["--split", split], prompts)
        assert got == want, f"{split}: {got!r} vs one process {want!r}"


@case("layers by free memory: boards of different sizes get layers in proportion (CRIA_MEM_AVAILABLE); a bad value ends every rank")
def _():
    args = ["run", "-m", LLAMA, "-p", "The cat sat on the mat", "-n", "32", "--greedy", "--quiet"] + T1
    rc, want, err, _ = run(args)
    assert rc == 0 and want.strip(), err[-1500:]

    def two_boards(mem0, mem1):
        cmd = [MPIRUN, "--oversubscribe", "-np", "1", "env", f"CRIA_MEM_AVAILABLE={mem0}", CRIA, *args, ":",
               "-np", "1", "env", f"CRIA_MEM_AVAILABLE={mem1}", CRIA, *args]
        p = subprocess.run(cmd, capture_output=True, timeout=120, env=ENV)
        return p.returncode, p.stdout.decode(), p.stderr.decode()
    # 3 layers: the even split is 2,1; a board with 4x the room of rank 0 takes 2.
    rc, got, err = two_boards("2G", "8G")
    assert rc == 0, err[-1500:]
    assert "layers by each rank's free memory: rank 0 2.0 GiB -> 1, rank 1 8.0 GiB -> 2" in err, err[-1500:]
    assert got == want, f"differs from one process:\n{got!r}\n{want!r}"
    rc, got, err = two_boards("8G", "7.5G")  # alike: the even split, said nowhere
    assert rc == 0 and got == want and "free memory" not in err, err[-1500:]
    rc, got, err = two_boards("8G", "lots")
    assert rc != 0 and "rank 1: CRIA_MEM_AVAILABLE: 'lots' is not a size" in err, err[-1500:]
    assert not got.strip(), f"generated anyway: {got!r}"


# --split tensors. The models: Falcon RW (ALiBi, biases, 12 heads divide by
# 2 and 3), Falcon-40B's layout (two-norm parallel block, 8 heads / 2 KV
# heads) and Falcon2-11B's (one-norm parallel block, multi-query: 4 heads /
# 1 KV head), 3 layers each, f32. Falcon-7B's 5 heads divide by nothing.
FALCON_RW = model("ref-falcon-rw", "f32")
FALCON_40B = model("ref-falcon-40b", "f32")
FALCON_MQA = os.path.join(WORK, "falcon2-11b-3-f32.cria")
if not os.path.exists(FALCON_MQA):
    src = os.path.join(WORK, "falcon2-11b-3")
    subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen_checkpoint.py"), "--preset", "falcon2-11b",
                    "--out", src, "--layers", "3", "--dtype", "f32"], check=True, stdout=subprocess.DEVNULL)
    rc_, _, err_, _ = run(["convert", src, "-o", FALCON_MQA, "--quant", "f32"])
    assert rc_ == 0, err_
GREEDY = ["-p", "The cat sat on the mat", "-n", "32", "--greedy", "--quiet"]

for name, m, ranks in (("llama (GQA; 4 ranks replicate the KV heads)", LLAMA, (2, 4)),
                       ("falcon-rw (ALiBi, biases)", FALCON_RW, (2, 3)),
                       ("falcon-40b layout (two-norm parallel block)", FALCON_40B, (2,)),
                       ("falcon2-11b layout (multi-query, one-norm parallel block)", FALCON_MQA, (2, 4))):
    @case(f"tensors: {name}: greedy text of {' and '.join(map(str, ranks))} ranks equals one process")
    def _(m=m, ranks=ranks):
        same_as_one_process(m, ["run", "-m", m] + GREEDY, [(r, TENSORS) for r in ranks])


@case("tensors: sampled num_return_sequences (KV rows copied on every rank), greedy with a q8 KV cache")
def _():
    # The partial sums make the hidden state differ from one process's in
    # the last bits, which an f16 or q8 cache row may round to another
    # value and a sampled token may then follow (greedy's margins do not
    # notice): the sampled case keeps its rows in f32.
    same_as_one_process(LLAMA, ["run", "-m", LLAMA, "-p", "Once upon", "-n", "16", "--do-sample", "--seed", "7",
                                "--num-return-sequences", "3", "--kv", "f32", "--quiet"], [(2, TENSORS)])
    same_as_one_process(LLAMA, ["run", "-m", LLAMA] + GREEDY + ["--kv", "q8"], [(2, TENSORS)])


@case("tensors: q4 perplexity of 2 and 4 ranks within 0.01% of one process")
def _():
    # Not bit for bit: each rank sums its share of attn_out's and ffn_down's
    # columns and the ranks add those partial sums, an order of additions
    # one process does not use. Measured on this fixture (Falcon-40B layout,
    # q4, ctx 64) under the avx512vnni, avx2 and scalar kernels: at most
    # 7.2e-6 relative. The Llama fixture is not used here: its peaky random
    # attention makes its q4 perplexity move by up to 0.03% between one
    # process's own kernel tables (avx512vnni / avx2 / scalar), more than
    # the bound (docs/ARCHITECTURE.md, "Tensor split").
    args = ["perplexity", "-m", model("ref-falcon-40b", "q4"), "-f", text_file(), "--ctx", "64"] + T1

    def ppl(out):
        lines = [l for l in out.splitlines() if l.startswith("perplexity:")]
        assert lines, f"no perplexity line in {out[-500:]!r}"
        return float(lines[-1].split()[1])
    rc, out, err, _ = run(args)
    assert rc == 0, err[-1500:]
    want = ppl(out)
    for ranks in (2, 4):
        rc, out, err, _ = run(args + TENSORS, ranks)
        assert rc == 0, err[-1500:]
        got = ppl(out)
        print(f"q4 perplexity, {ranks} ranks by tensors: {got} vs {want} ({abs(got - want) / want:.2e})")
        assert abs(got - want) <= 1e-4 * want, f"{ranks} ranks: {got} vs {want}"


@case("tensors: f32 perplexity of falcon-rw (biases once, ALiBi) on 2 and 3 ranks within 1e-4 of one process")
def _():
    # Greedy text does not notice a bias added on every rank (the ref
    # fixture's biases are small); perplexity does: 0.6% off then, against
    # 1e-5 measured with the bias on rank 0 alone.
    args = ["perplexity", "-m", FALCON_RW, "-f", text_file(), "--ctx", "64"] + T1
    rc, out, err, _ = run(args)
    assert rc == 0, err[-1500:]
    want = float([l for l in out.splitlines() if l.startswith("perplexity:")][-1].split()[1])
    for ranks in (2, 3):
        rc, out, err, _ = run(args + TENSORS, ranks)
        assert rc == 0, err[-1500:]
        got = float([l for l in out.splitlines() if l.startswith("perplexity:")][-1].split()[1])
        assert abs(got - want) <= 1e-4 * want, f"{ranks} ranks: {got} vs {want}"


@case("tensors: a killed rank ends the job within 30 s (mpirun names it; under --enable-recovery rank 0 says so)")
def _():
    rc, err = fault("kill", tensors=True)
    assert rc != 0, "exit status 0"
    assert "rank 1" in err and "signal 9" in err, err[-1500:]
    rc, err = fault("kill", ["--enable-recovery"], tensors=True)
    says_timed_out(err)


@case("tensors: a frozen rank ends the job within 30 s with rank 0's message")
def _():
    rc, err = fault("stop", tensors=True)
    assert rc != 0, "exit status 0"
    says_timed_out(err)


@case("tensors: heads that do not divide, --layer-split and different files are refused at start")
def _():
    for m, ranks, what in ((LLAMA, 3, "heads 4 / KV heads 2 do not divide across 3 ranks"),
                           (FALCON, 2, "heads 5 / KV heads 1 do not divide across 2 ranks")):
        rc, out, err, _ = run(["run", "-m", m, "-p", "hi", "-n", "4"] + T1 + TENSORS, ranks)
        assert rc != 0 and what in err, err[-1500:]
        assert not out.strip(), f"generated anyway: {out!r}"
    rc, out, err, _ = run(["run", "-m", LLAMA, "-p", "hi", "-n", "4", "--layer-split", "1,2"] + T1 + TENSORS, 2)
    assert rc != 0 and "--layer-split applies to --split layers" in err, err[-1500:]
    other = model("ref-llama31-scaled", "q4")
    cmd = [MPIRUN, "--oversubscribe", "-np", "1", CRIA, "run", "-m", LLAMA, "-p", "hi", "-n", "4", "-t", "1",
           *TENSORS, ":", "-np", "1", CRIA, "run", "-m", other, "-p", "hi", "-n", "4", "-t", "1", *TENSORS]
    p = subprocess.run(cmd, capture_output=True, timeout=60, env=ENV)
    err = p.stderr.decode()
    assert p.returncode != 0, "exit status 0"
    assert "rank 1: " in err and "differs from rank 0's" in err, err[-1500:]
    assert not p.stdout.strip(), f"generated anyway: {p.stdout!r}"


# Each rank in its own network namespace: the job's messages cross veth, a
# bridge and two TCP stacks, as between boards on a switch.
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from pylib import netns  # noqa: E402

NETNS_OK, NETNS_WHY = netns.available()


def stacks(pattern):
    """Where every process matching `pattern` waits (gdb backtraces), for a hang's report."""
    out = []
    for pid in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split():
        bt = subprocess.run(["gdb", "-p", pid, "-batch", "-ex", "thread apply all bt 12"], capture_output=True,
                            text=True, timeout=60).stdout
        out.append(f"--- pid {pid}: " + "\n".join(l for l in bt.splitlines() if l.startswith(("#", "Thread"))))
    return "\n".join(out)


def run_netns(args, hosts):
    """args under mpirun on the namespaces. Once (1 of ~80 runs, only while
    the machine was loaded by a parallel build and a browser) a tensors run
    hung for 120 s without any rank's exchange bound firing, and it has not
    come back since: a hang is reported with every rank's and daemon's
    backtrace, then run once more; a second hang fails."""
    cmd = [MPIRUN, "--oversubscribe", *hosts.mpirun_args(), "-np", "2", CRIA] + args
    for attempt in (1, 2):
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        try:
            out, err = proc.communicate(timeout=90)
            return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            report = stacks(os.path.basename(CRIA) + " " + args[0]) + "\n" + stacks("orted")
            proc.kill()
            out, err = proc.communicate()
            print(f"netns run hung (attempt {attempt}); stderr: {err.decode()[-1500:]}\nbacktraces:\n{report}")
            hosts.kill_all()
    raise AssertionError("mpirun on the namespaces hung twice (backtraces above)")


if NETNS_OK:
    @case("netns: 2 ranks on separate network stacks, both splits: greedy text equals one process, bytes crossed")
    def _():
        args = ["run", "-m", LLAMA] + GREEDY + T1
        rc, want, err, _ = run(args)
        assert rc == 0 and want.strip(), err[-1500:]
        with open(os.path.join(WORK, "ref-llama31-scaled-3", "config.json")) as f:
            hidden = json.load(f)["hidden_size"]
        with netns.Hosts(2) as hosts:
            for split, layers_crossed in (("layers", 1), ("tensors", 2 * 3)):
                before = hosts.sent_bytes()
                rc, got, err = run_netns(args + ["--split", split], hosts)
                assert rc == 0, f"{split}: exit {rc}: {err[-1500:]}"
                assert got == want, f"{split}: differs from one process:\n{got!r}\n{want!r}"
                # At least one f32 hidden row per generated token per crossing.
                sent, least = hosts.sent_bytes() - before, 32 * layers_crossed * hidden * 4
                print(f"netns {split}: {sent} bytes crossed the bridge (at least {least} expected)")
                assert sent >= least, f"{split}: only {sent} bytes crossed the bridge, want >= {least}"
elif os.geteuid() == 0:
    @case("netns: network namespaces can be made (root)")
    def _():
        raise AssertionError(NETNS_WHY)
else:
    print(f"skipped: the network-namespace case ({NETNS_WHY})")

failed = [r for r in results if r[1]]
for name, err, secs in results:
    print(f"{'FAIL' if err else 'ok  '} {name} ({secs:.1f} s)" + (f"\n     {err}" if err else ""))
print(f"{len(results) - len(failed)}/{len(results)} passed")
sys.exit(1 if failed else 0)
