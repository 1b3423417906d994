"""Run a ctxdask batch on a Slurm or PBS cluster through dask-jobqueue.

Each batch job is one dask worker with one thread and the ``stereo=1`` resource,
so the batch runs at most one ASP correlation per job while parallel_stereo uses
the job's cores itself. Install ``dask-jobqueue`` in the same environment as
ctxdask on the login node and the compute nodes; the workers' package versions
must match the client's (``ctxdask.cluster.check_versions`` checks them).

    python cluster/jobqueue/batch_on_hpc.py slurm pairs.txt /scratch/$USER/ctx-out --jobs 20
    python cluster/jobqueue/batch_on_hpc.py pbs pairs.txt /scratch/$USER/ctx-out --queue workq
"""

from __future__ import annotations

import argparse

from dask_jobqueue import PBSCluster, SLURMCluster
from distributed import Client

import ctxdask.cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("system", choices=("slurm", "pbs"))
    parser.add_argument("pairs")
    parser.add_argument("out")
    parser.add_argument("--jobs", type=int, default=10, help="batch jobs (= dask workers)")
    parser.add_argument("--queue", default=None, help="Slurm partition or PBS queue")
    parser.add_argument("--account", default=None, help="Slurm account or PBS project")
    args = parser.parse_args()

    cluster_class = SLURMCluster if args.system == "slurm" else PBSCluster
    cluster = cluster_class(
        queue=args.queue,
        account=args.account,
        cores=8,  # parallel_stereo uses the node's cores itself; dask runs one task at a time
        processes=1,
        memory="32GB",
        walltime="12:00:00",
        worker_extra_args=["--nthreads", "1", "--resources", "stereo=1"],
        local_directory="$TMPDIR",
        job_script_prologue=["module load isis asp || true"],
    )
    cluster.scale(jobs=args.jobs)
    with Client(cluster) as client:
        ctxdask.cluster.check_versions(client)
        from ctxdask.batch import run_batch

        print(run_batch(args.pairs, args.out, client=client))


if __name__ == "__main__":
    main()
