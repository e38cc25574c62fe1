"""The Flask extensions: :class:`FlaskRedisSingle` for one database, :class:`FlaskRedisMulti` for several."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, cast
from weakref import WeakKeyDictionary

from flask import Flask, current_app, has_app_context
from typing_extensions import Self

from .cluster import ClusterSession
from .commands import ForwardedCommands
from .config import AnyConfig, ClusterNodes, DatabaseSpec, Label, Sentinels, load_config, resolve
from .connection import build_cluster, build_sessions, database_url
from .errors import FlaskRedisError, NotInitializedError, UnknownDatabaseError
from .forks import ProcessLock
from .session import RedisSession

if TYPE_CHECKING:
    from .broker import Broker

__all__ = ["FlaskRedisMulti", "FlaskRedisSingle", "RedisExtension"]


@dataclass
class _AppState:
    """What the extension keeps per Flask app (or for its own config when used without an app)."""

    specs: list[DatabaseSpec]
    sessions: dict[str, RedisSession]  # of every database that is not a cluster
    replicas: dict[str, RedisSession]  # of the databases behind sentinels
    clusters: dict[str, ClusterSession] = field(default_factory=dict)  # made on first use: it reads the slots
    _lock: ProcessLock = field(default_factory=ProcessLock)  # held while a cluster reads its slots (forks.py)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    def session(self, name: str) -> RedisSession | ClusterSession:
        found = self.sessions.get(name)
        if found is not None:
            return found
        with self._lock:
            cluster = self.clusters.get(name)
            if cluster is None:
                cluster = build_cluster(self.spec(name))
                self.clusters[name] = cluster
            return cluster

    def replica(self, wanted: str | int | None) -> RedisSession | ClusterSession:
        name = self.name_of(wanted)
        return self.replicas.get(name) or self.session(name)

    def lookup(self, wanted: str | int | None) -> RedisSession | ClusterSession:
        return self.session(self.name_of(wanted))

    def spec(self, wanted: str | int | None) -> DatabaseSpec:
        """The resolved configuration of a database: no session is made (a cluster's would connect)."""
        name = self.name_of(wanted)
        return next(spec for spec in self.specs if spec.name == name)

    def name_of(self, wanted: str | int | None) -> str:
        names = self.names
        if wanted is None:
            if len(names) == 1:
                return names[0]
            raise UnknownDatabaseError(wanted, names, "is ambiguous: name one of several databases")
        if isinstance(wanted, str):
            if wanted in names:
                return wanted
            raise UnknownDatabaseError(wanted, names)
        if isinstance(wanted, int) and not isinstance(wanted, bool):
            matches = [spec.name for spec in self.specs if spec.index == wanted]
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise UnknownDatabaseError(wanted, names, f"is ambiguous: {', '.join(matches)} use it")
            raise UnknownDatabaseError(wanted, names, "is no configured database index")
        raise UnknownDatabaseError(wanted, names, "is neither a database name nor an index")


class RedisExtension:
    """What both extensions share: configuration, per-app state, ``getRedis`` and the broker."""

    multi: ClassVar[bool]

    def __init__(
        self,
        app: Flask | dict[str, Any] | AnyConfig | str | None = None,
        strict: bool = True,
        config_element: str = "REDIS",
        prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        """
        :param app: a Flask app (configured from ``app.config``), or a mapping, URL or config model that
            :meth:`init_app` binds to apps later.
        :param strict: kept for compatibility: with redis-py 3 and later ``StrictRedis`` is ``Redis``, so both
            values give a ``redis.Redis``.
        :param config_element: the config section (``REDIS``) and flat-key prefix (``REDIS_HOST``); its lower-case
            form is the key in ``app.extensions``.
        :param prefix: the default channel prefix; a PREFIX in the config wins over it.
        :param kwargs: passed to every redis client unchanged (``decode_responses``, ``socket_timeout`` ...).
        """
        self.strict = strict
        self.config_element = config_element
        self.default_prefix = prefix  # not ``prefix``: on FlaskRedisSingle that is its session's, forwarded
        self.client_kwargs = kwargs
        self._config: tuple[AnyConfig, Label] | None = None
        self._states: WeakKeyDictionary[Flask, _AppState] = WeakKeyDictionary()
        self._own_state: _AppState | None = None
        if isinstance(app, Flask):
            self.init_app(app)
        elif app is not None:
            self._config = load_config(app, config_element=config_element, multi=self.multi)
            self._own_state = self._build_state(None)

    @classmethod
    def from_flat_keys(cls, keys: Mapping[str, Any], config_element: str = "REDIS", **kwargs: Any) -> Self:
        """An extension configured from flat keys (``REDIS_HOST``, ``REDIS_DB`` ...), as from an ``app.config``
        that has no ``REDIS`` section, and bound to no app: what the migration layers build. Errors name the keys
        as written.

        :param kwargs: as the constructor's.
        """
        extension = cls(config_element=config_element, **kwargs)
        extension._config = load_config(keys, config_element=config_element, multi=cls.multi, flask_config=True)
        extension._own_state = extension._build_state(None)
        return extension

    @property
    def extension_key(self) -> str:
        """The key of this extension in ``app.extensions``."""
        return self.config_element.lower()

    def init_app(self, app: Flask) -> None:
        """Register on ``app``: read its config (unless one was given), build the clients, add ``flask redis``.

        No connection is opened here; the first command connects.
        """
        key = self.extension_key
        taken = app.extensions.get(key)
        if taken is self:
            raise FlaskRedisError(
                f"this {type(self).__name__} is already registered on app {app.name!r}; call init_app once per app"
            )
        if taken is not None:
            raise FlaskRedisError(
                f"app.extensions[{key!r}] is already taken by {type(taken).__name__}; "
                f"give this extension another config_element"
            )
        self._states[app] = self._build_state(app)
        app.extensions[key] = self
        from .cli import redis_group

        app.cli.add_command(redis_group(self), name=key)
        if "broker" in self.__dict__:
            self.broker.bind(app)

    @cached_property
    def broker(self) -> Broker:
        """The message broker over this extension's first database (see :class:`~flask_multi_redis.broker.Broker`)."""
        from .broker import Broker

        return Broker(self)

    @property
    def apps(self) -> list[Flask]:
        """The apps this extension is initialised for (and still alive)."""
        return list(self._states.keys())

    def context_app(self) -> Flask | None:
        """The app whose configuration this extension uses in the current context: the current app when the
        extension is initialised for it, otherwise None, for its own configuration (a dict, URL or model given
        to the constructor).

        :raises NotInitializedError: as :meth:`getRedis` does, when neither serves the current context.
        """
        if has_app_context():
            app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
            if app in self._states:
                return app
            if self._own_state is None:
                self._state(None)  # raises: not initialised for this app
        elif self._own_state is None:
            return self._sole_app()
        return None

    def _sole_app(self) -> Flask:
        """The one app this extension is bound to, for use outside an app context (scripts, shells).

        :raises NotInitializedError: it is bound to none, or to several (which are named).
        """
        apps = self.apps
        if len(apps) == 1:
            return apps[0]
        if apps:
            names = ", ".join(repr(app.name) for app in apps)
            raise NotInitializedError(
                f"{type(self).__name__} is used outside of an application context and is bound to several apps "
                f"({names}). Use 'with app.app_context():' or pass app= to say which."
            )
        raise NotInitializedError(
            f"{type(self).__name__} is used outside of an application context. "
            f"Use 'with app.app_context():', or configure it from a dict or model to use it without an app."
        )

    def _build_state(self, app: Flask | None) -> _AppState:
        if self._config is not None:
            config, label = self._config
        else:
            assert app is not None
            config, label = load_config(
                app.config, config_element=self.config_element, multi=self.multi, flask_config=True
            )
        specs = resolve(config, label, prefix=self.default_prefix, client_kwargs=self.client_kwargs)
        behind_sentinels = [spec for spec in specs if isinstance(spec.topology, Sentinels)]
        replicas = build_sessions(behind_sentinels, replicas=True)
        servers = [spec for spec in specs if not isinstance(spec.topology, ClusterNodes)]
        return _AppState(specs=specs, sessions=build_sessions(servers), replicas=replicas)

    def _state(self, app: Flask | None = None) -> _AppState:
        """The state of ``app``, or of the current context when None."""
        if app is not None:
            state = self._states.get(app)
        elif has_app_context():
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            state = self._states.get(app) or self._own_state
        elif self._own_state is None:
            return self._states[self._sole_app()]
        else:
            return self._own_state
        if state is None:
            raise NotInitializedError(
                f"{type(self).__name__} is not initialised for app {app.name!r}. Did you forget to call init_app(app)?"
            )
        return state

    def getRedis(  # noqa: N802 - the seeds' name
        self, name_or_index: str | int | None = None, *, app: Flask | None = None, replica: bool = False
    ) -> RedisSession:
        """The session of a database, by NAME or by database index; with one database the argument may be left out.

        Behind sentinels (``SENTINELS``) the session follows the primary through failovers.

        :param app: the app whose configuration to use; by default, the current context's.
        :param replica: a session for reads on a replica: behind sentinels, on one of the replicas they list
            (in turn, and the primary when none is up); on one server or a cluster, the database's own session.
        :returns: a RedisSession; on a Redis Cluster a :class:`~flask_multi_redis.ClusterSession` (a
            ``redis.RedisCluster``, not a ``redis.Redis``), which the annotation does not say: typed code on a
            cluster calls :meth:`getCluster`.
        :raises UnknownDatabaseError: no such database (the message lists the known ones).
        """
        state = self._state(app)
        session = state.replica(name_or_index) if replica else state.lookup(name_or_index)
        return cast(RedisSession, session)  # a ClusterSession for a cluster: see getCluster

    def getCluster(  # noqa: N802 - as getRedis
        self, name_or_index: str | int | None = None, *, app: Flask | None = None
    ) -> ClusterSession:
        """The :class:`~flask_multi_redis.ClusterSession` of a database on a Redis Cluster (``CLUSTER``), typed
        as such: ``getRedis`` returns the same object, typed as a RedisSession. The first use connects, to read
        the cluster's slots.

        :raises UnknownDatabaseError: no such database, or it is not on a cluster.
        """
        state = self._state(app)
        session = state.lookup(name_or_index)
        if not isinstance(session, ClusterSession):
            raise UnknownDatabaseError(name_or_index, state.names, "is not on a Redis Cluster")
        return session

    def sessions(self, app: Flask | None = None) -> dict[str, RedisSession | ClusterSession]:
        """The session of every configured database, by name, in configuration order (of ``app``, or of the
        current context). A cluster's session is made on first use, here too: that connects, to read its slots."""
        state = self._state(app)
        return {name: state.session(name) for name in state.names}

    @property
    def databases(self) -> list[str]:
        """The configured database names, in configuration order."""
        return self._state().names

    def databases_of(self, app: Flask | None = None) -> list[str]:
        """The database names of ``app`` (or of the current context), in configuration order."""
        return self._state(app).names

    def signing_keys(self, name_or_index: str | int | None = None, *, app: Flask | None = None) -> tuple[bytes, ...]:
        """The keys that sign the broker's messages over that database (SIGNING_KEY, SIGNING_KEYS): the first
        signs, any is accepted; none: messages are not signed."""
        return self._state(app).spec(name_or_index).signing_keys

    def where(self, name_or_index: str | int | None = None, *, app: Flask | None = None) -> tuple[str, str]:
        """A database's address (password hidden) and PREFIX, from its configuration: no connection is made, so
        a server that does not answer is still named."""
        spec = self._state(app).spec(name_or_index)
        return spec.address, spec.prefix

    def addresses(self, app: Flask | None = None) -> dict[str, str]:
        """Database name -> server address with any password replaced by ``***`` (of ``app``, or of the
        current context)."""
        return {spec.name: spec.address for spec in self._state(app).specs}

    def url(self, name_or_index: str | int | None = None, *, app: Flask | None = None) -> str:
        """The URL of a database with its credentials, for libraries that take only a URL (Flask-Limiter's
        ``storage_uri``): ``redis://user:password@host:port/db``, or ``rediss://``, ``unix://``,
        ``redis+sentinel://``, ``redis+cluster://`` as configured. It holds the password: give it to the
        library, never to a log (:meth:`addresses` is the one to show)."""
        return database_url(self._state(app).spec(name_or_index))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} config_element={self.config_element!r}>"


class FlaskRedisSingle(RedisExtension, ForwardedCommands):
    """One Redis database, configured from ``app.config[config_element]`` (or flat ``REDIS_*`` keys), a dict,
    a URL or an :class:`~flask_multi_redis.IRedisSimpleConfig`.

    ``getRedis()`` returns its :class:`~flask_multi_redis.RedisSession`; Redis commands called on the extension
    itself (``redis.get("k")``, ``redis.pipeline()``), as flask-redis and Flask-And-Redis offer them, go to that
    session, of the current app (or of the one app it is bound to, outside an app context).
    """

    multi = False

    def _commands(self) -> RedisSession:
        return self.getRedis()


class FlaskRedisMulti(RedisExtension):
    """Several named Redis databases (``DATABASES``), possibly on several servers, configured like
    :class:`FlaskRedisSingle` or from an :class:`~flask_multi_redis.IRedisMultiConfig`.

    ``getRedis(name_or_index)`` returns the :class:`~flask_multi_redis.RedisSession` of one of them.
    """

    multi = True
