# The unix port's own module behind a stand-in of the same name. With an empty
# sys.path, MicroPython's import finds the built-in module even while a file of
# that name shadows it on the path (checked on the unix port 1.28/1.29).
import sys


def builtin(name):
    path = sys.path
    sys.path = []
    try:
        return __import__(name)
    finally:
        sys.path = path
