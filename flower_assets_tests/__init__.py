"""The test suite. Before any test module imports the code location: its partitions.

Without a service key the auction-date partitions are the sample period only (defs/partitions.py).
The in-process tests run the code location against a fake aT server on dates of any year, as
production does with a key: the partitions are built here as with a key. The resources still
read the key at run time, so a test without one still runs in sample mode.
"""

import importlib
import os

_saved = os.environ.get("FLOWER_API_KEY")
os.environ["FLOWER_API_KEY"] = "partitions-as-with-a-key"
try:
    importlib.import_module("flower_assets.defs.partitions")
finally:
    if _saved is None:
        del os.environ["FLOWER_API_KEY"]
    else:
        os.environ["FLOWER_API_KEY"] = _saved
