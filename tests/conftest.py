import os, sys

_status = []

def pytest_sessionfinish(session, exitstatus):
    _status.append(int(exitstatus))

def pytest_unconfigure(config):
    """End the process right after pytest's summary line.

    Notebooks that use `torch.compile` leave dynamo guards that point into the notebooks' namespaces; at interpreter
    shutdown those are torn down in an order that makes torch print pages of harmless `KeyError: '__builtins_dict__…'`
    tracebacks *after* the summary line. Exiting here (streams flushed, same exit status) keeps `N passed` the last line.
    """
    if 'torch._dynamo' in sys.modules and _status:
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(_status[0])
