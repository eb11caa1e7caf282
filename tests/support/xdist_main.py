"""The __file__ that tests/conftest.py gives a pytest-xdist worker's __main__ (which has none).

It must exist and do nothing: a process the worker spawns (multiprocessing's spawn start
method, as the serving server's off-path scorer uses) runs its parent's main file first.
"""
