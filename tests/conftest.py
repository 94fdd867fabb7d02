import atexit, sys

def _shutdown_noise(u) -> bool:
    "Whether an unraisable exception is one of the two known, harmless interpreter-exit callbacks of the notebook tests."
    tb, exc = u.exc_traceback, u.exc_value
    last = None
    while tb is not None: last, tb = tb, tb.tb_next
    where = last.tb_frame.f_code.co_filename if last is not None else ''
    # Dynamo's guards delete `__builtins_dict___N` from a notebook's namespace when the objects they watch die; at exit
    # the namespaces are cleared first
    if isinstance(exc, KeyError) and str(exc).startswith("'__builtins_dict__") and 'torch/_dynamo' in where: return True
    # weakref callbacks defined in a notebook cell (the optimizer hook's bookkeeping) run after that namespace is gone
    return isinstance(exc, NameError) and where.startswith('<ipython-input-')

def pytest_unconfigure(config):
    """Filter the two known interpreter-exit messages of the notebook tests, and only those.

    Each notebook runs in a namespace that lives until the interpreter exits. At exit those namespaces are cleared
    before the weak references into them fire, so torch.compile's guard callbacks print pages of
    `KeyError: '__builtins_dict__…'` and a notebook-defined weakref callback a `NameError` — after pytest's summary,
    without changing its exit status. Every other unraisable exception is still reported.
    """
    def install():  # at exit, after pytest has put back the hook it replaced
        default = sys.unraisablehook
        sys.unraisablehook = lambda u: None if _shutdown_noise(u) else default(u)
    atexit.register(install)
