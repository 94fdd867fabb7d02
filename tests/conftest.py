import gc, sys

def pytest_unconfigure(config):
    """Drop torch.compile's caches before the interpreter tears down.

    Notebooks that use `torch.compile` leave Dynamo guards whose weak-reference callbacks point into the notebooks'
    namespaces; torn down at interpreter exit, after those namespaces, each prints `KeyError: '__builtins_dict__…'`
    (pages of harmless tracebacks after pytest's summary). Resetting Dynamo while everything is alive removes them in
    order, so pytest ends normally, with its own exit status and teardown.
    """
    if 'torch._dynamo' in sys.modules:
        import torch._dynamo
        torch._dynamo.reset()
        gc.collect()
