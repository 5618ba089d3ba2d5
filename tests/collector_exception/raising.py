"""The known-count exception workload: f() raises ValueError, g() raises KeyError, each caught at once."""


def f():
    try:
        raise ValueError("bad value")
    except ValueError:
        pass


def g():
    try:
        raise KeyError("missing")
    except KeyError:
        pass
