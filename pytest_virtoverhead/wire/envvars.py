"""Names of the environment variables a worker's code can read.
Standard library only, imported inside every environment."""

#: The worker's scratch directory for file I/O: a temporary directory on the
#: host, the container's writable layer or a volume, the VM's scratch disk.
SCRATCH_ENV = "VIRTOVERHEAD_SCRATCH"

#: Set (to "1") in every worker process: the plugin loaded there stays passive.
WORKER_ENV_VAR = "PYTEST_VIRTOVERHEAD_WORKER"

#: The name of the worker's environment (the ``hello`` request carries it).
ENV_NAME_VAR = "VIRTOVERHEAD_ENV"

#: A host pid: a worker started with it ends itself when that process is no
#: longer its parent (the baremetal worker, whose host may be SIGKILLed).
WATCH_PARENT_VAR = "VIRTOVERHEAD_WATCH_PARENT"
