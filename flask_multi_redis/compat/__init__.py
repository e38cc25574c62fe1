"""Drop-in layers for apps coming from other Flask Redis extensions: replacing the import is the migration.

- :mod:`flask_multi_redis.compat.flask_and_redis`: Flask-And-Redis's ``Redis`` (imported there as
  ``from flask_redis import Redis``).
- :mod:`flask_multi_redis.compat.flask_redis`: flask-redis's ``FlaskRedis`` (underyx/flask-redis).

Each is a thin layer over :class:`~flask_multi_redis.FlaskRedisSingle` (its ``extension`` attribute), so an app
can move to the broker, the collections and the rest one call at a time.
"""
