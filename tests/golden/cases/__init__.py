"""Golden-data case tables, one module per group (see ``tests/golden/README.md``).

These modules are imported both by the generator (Python 3.9 with a real
pycaffe, numpy only) and by the tests, so they use nothing but numpy and
plain Python 3.9 syntax.
"""
