#!/usr/bin/env python3
"""Run `ember train --distributed` on a Spark cluster, from a barrier-mode stage.

The stage has one task per rank (give `spark.task.cpus` the executors' cores, so that each
task holds a whole executor). Spark starts a barrier stage's tasks all at once or not at all.
Task 0 writes a hostfile of the tasks' hosts and runs `mpirun` over them (MPICH's or Open
MPI's launcher, which reaches the other hosts over ssh); the other tasks wait at the barrier
and keep their executors reserved until training ends. `mpirun` exits non-zero if any rank
fails, and then task 0 fails, which fails the stage; this script then exits with `mpirun`'s
status. ember's stdout (the epoch table, or JSON lines with --json) is printed by the driver
at the end; its stderr goes to task 0's executor log as it is written.

    spark-submit scripts/spark_train.py --ember /opt/ember/bin/ember -- \\
        --dataset /shared/data.parquet --model cifar-cnn --out /shared/runs/r1 --json

Everything after `--` is passed to `ember train` (which gets `--distributed` added). The
dataset and run folder must be at the same paths on every host (a shared filesystem).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading

STATUS = re.compile(r"ember-spark: mpirun exited with status (-?\d+)")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Run `ember train --distributed` from a Spark barrier stage.",
        usage="%(prog)s [options] -- EMBER_TRAIN_ARGS...",
    )
    p.add_argument("--ember", default="ember",
                   help="the ember binary (built with the mpi feature) on every host")
    p.add_argument("--ranks", type=int, default=0,
                   help="processes, one barrier task each (default: spark.executor.instances, "
                        "else the default parallelism, e.g. 2 for local[2])")
    p.add_argument("--mpirun", default="mpirun", help="the MPI launcher on every host")
    p.add_argument("--mpirun-arg", action="append", default=[],
                   help="an extra argument for mpirun (repeatable), e.g. -launcher=ssh")
    p.add_argument("--workdir", default=os.getcwd(),
                   help="working folder of every rank (default: this one), where relative "
                        "dataset and --out paths are resolved")
    p.add_argument("--master", default=None,
                   help="Spark master when not run by spark-submit (e.g. local[2])")
    p.add_argument("ember_args", nargs=argparse.REMAINDER,
                   help="after --: the arguments of `ember train`")
    args = p.parse_args(argv)
    if args.ember_args[:1] == ["--"]:
        args.ember_args = args.ember_args[1:]
    return args


def hostfile_lines(hosts, flavour):
    """One line per host with its number of ranks, in the order of first appearance."""
    counts = {}
    for h in hosts:
        counts[h] = counts.get(h, 0) + 1
    if flavour == "openmpi":
        return [f"{h} slots={n}" for h, n in counts.items()]
    return [f"{h}:{n}" for h, n in counts.items()]


def mpi_flavour(mpirun):
    """'openmpi' or 'mpich' (Hydra), from `mpirun --version`."""
    try:
        out = subprocess.run([mpirun, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "mpich"
    return "openmpi" if "Open MPI" in out or "OpenRTE" in out else "mpich"


def launch(args, hosts):
    """Task 0's job: mpirun over `hosts`; returns (status, stdout, stderr tail)."""
    flavour = mpi_flavour(args.mpirun)
    with tempfile.NamedTemporaryFile("w", prefix="ember-hosts-", suffix=".txt",
                                     delete=False) as f:
        f.write("\n".join(hostfile_lines(hosts, flavour)) + "\n")
        hostfile = f.name
    hosts_flag = "--hostfile" if flavour == "openmpi" else "-f"
    cmd = [args.mpirun, hosts_flag, hostfile, "-n", str(len(hosts)), "-wdir", args.workdir]
    cmd += args.mpirun_arg + [args.ember, "train", "--distributed"] + args.ember_args
    print("ember-spark: " + " ".join(cmd), file=sys.stderr, flush=True)
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=args.workdir)
    except OSError as e:
        os.unlink(hostfile)
        return 127, "", f"ember-spark: cannot start {args.mpirun}: {e}"
    out, err = [], []

    def copy(stream, keep, echo):
        for line in stream:
            keep.append(line)
            echo.write(line)
            echo.flush()

    # stdout is kept for the driver; stderr (progress, errors) also goes to the task's log.
    t_out = threading.Thread(target=copy, args=(proc.stdout, out, sys.stderr))
    t_err = threading.Thread(target=copy, args=(proc.stderr, err, sys.stderr))
    t_out.start()
    t_err.start()
    status = proc.wait()
    t_out.join()
    t_err.join()
    os.unlink(hostfile)
    return status, "".join(out), "".join(err[-30:])


def barrier_task(args):
    """The function every task of the barrier stage runs."""

    def run(_rows):
        from pyspark import BarrierTaskContext

        ctx = BarrierTaskContext.get()
        hosts = [t.address.rsplit(":", 1)[0] for t in ctx.getTaskInfos()]
        status, out, err = 0, "", ""
        if ctx.partitionId() == 0:
            status, out, err = launch(args, hosts)
        # Every task waits here until task 0's mpirun has ended.
        ctx.barrier()
        if status != 0:
            raise RuntimeError(
                f"ember-spark: mpirun exited with status {status}\n{err}")
        yield (ctx.partitionId(), out)

    return run


def default_ranks(sc):
    instances = sc.getConf().get("spark.executor.instances")
    if instances and not sc.master.startswith("local"):
        return int(instances)
    return sc.defaultParallelism


def main(argv):
    args = parse_args(argv)
    if not args.ember_args:
        print("spark_train.py: give the arguments of `ember train` after --", file=sys.stderr)
        return 2
    if os.path.sep in args.ember and not os.path.isabs(args.ember):
        args.ember = os.path.abspath(args.ember)
    elif os.path.sep not in args.ember and shutil.which(args.ember):
        args.ember = shutil.which(args.ember)
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("ember-train")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    ranks = args.ranks or default_ranks(sc)
    try:
        rdd = sc.parallelize(range(ranks), ranks).barrier().mapPartitions(barrier_task(args))
        results = rdd.collect()
    except Exception as e:  # the stage failed: a rank failed, or Spark could not run it
        m = STATUS.search(str(e))
        status = int(m.group(1)) if m else 1
        print(f"ember-spark: the training stage failed (mpirun status "
              f"{m.group(1) if m else 'unknown'})", file=sys.stderr)
        spark.stop()
        return status if 0 < status < 256 else 1
    for _, out in sorted(results):
        sys.stdout.write(out)
    sys.stdout.flush()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
