"""Start-up hook of every deployable process the local stack starts (the stack puts this folder
first on their ``PYTHONPATH``): records the process's Google API calls for the IAM contract,
and injects the faults the stack was asked for (``local/faults.py``). A deployment never loads
it, so production code carries neither."""

from local import calltrace, faults

calltrace.install()
faults.install()
