"""Start-up hook of every deployable process the local stack starts (the stack puts this folder
first on their ``PYTHONPATH``): records the process's Google API calls for the IAM contract.
A deployment never loads it, so production code carries no recorder."""

from local.calltrace import install

install()
