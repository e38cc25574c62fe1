"""Put first on PYTHONPATH, this folder makes ``import gevent`` fail as it does where gevent is not installed."""

raise ModuleNotFoundError("No module named 'gevent'", name="gevent")
