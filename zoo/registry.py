"""Name -> class registries that also register Keras serialization under package "zoo".

Every family in zoo keeps one `Registry`: attention variants (``zoo.attention.REGISTRY``),
networks (``zoo.layers.NETWORKS``), task models (``zoo.models.REGISTRY``) and decoding
strategies (``zoo.decoding.REGISTRY``); exporters are listed in ``zoo.export.EXPORTERS``.
Registering a class makes it reachable three ways: by its short name (`"additive"`), by a
config dict, and by Keras deserialization (`"zoo>AdditiveAttention"`), so
that a saved `.keras` file loads with `safe_mode=True` and no `custom_objects`.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, Iterable, Optional, Type

import keras

PACKAGE = "zoo"


class Registry:
    """A named family of classes.

    Args:
        family: What the entries are, used in error messages (e.g. ``"attention"``).
        base: The class every entry must subclass; ``get`` returns instances of it unchanged.

    Example:
        >>> class Widget:
        ...     def get_config(self):
        ...         return {}
        >>> reg = Registry("widget", base=Widget)
        >>> @reg.register("plain")
        ... class Plain(Widget):
        ...     def __init__(self, size=1):
        ...         self.size = size
        ...     def get_config(self):
        ...         return {"size": self.size}
        >>> reg.get("plain", size=3).size
        3
    """

    def __init__(self, family: str, base: type):
        self.family = family
        self.base = base
        self._entries: Dict[str, type] = {}
        self._aliases: Dict[str, str] = {}

    def register(self, name: str, aliases: Iterable[str] = ()) -> Callable[[Type], Type]:
        """Class decorator: registers ``cls`` as ``name`` (and aliases) and with Keras."""

        def decorator(cls):
            key = self._normalise(name)
            if key in self._entries or key in self._aliases:
                raise ValueError(f"{self.family} {name!r} is already registered")
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                raise TypeError(f"{cls!r} must subclass {self.base.__name__}")
            keras.saving.register_keras_serializable(package=PACKAGE, name=cls.__name__)(cls)
            cls.registry_name = key
            self._entries[key] = cls
            for alias in aliases:
                self._aliases[self._normalise(alias)] = key
            return cls

        return decorator

    def names(self) -> list:
        """The registered names, sorted (aliases not included)."""
        return sorted(self._entries)

    def aliases(self) -> Dict[str, str]:
        """Alias -> registered name."""
        return dict(self._aliases)

    def get_class(self, name: str) -> type:
        """The class registered as ``name`` or one of its aliases."""
        if not isinstance(name, str):
            raise TypeError(f"{self.family} name must be a string, got {type(name).__name__}")
        key = self._normalise(name)
        key = self._aliases.get(key, key)
        if key not in self._entries:
            known = self.names()
            close = difflib.get_close_matches(key, known + list(self._aliases), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            alias_text = ""
            if self._aliases:
                alias_text = " (aliases: " + ", ".join(
                    f"{a}->{t}" for a, t in sorted(self._aliases.items())) + ")"
            raise ValueError(
                f"Unknown {self.family} {name!r}. Known {self.family} names: "
                f"{', '.join(known)}{alias_text}.{hint}")
        return self._entries[key]

    def get(self, identifier: Any, **kwargs) -> Any:
        """Resolve a name, a config dict or an instance to an instance.

        Args:
            identifier: A registered name (``"additive"``); a dict
                ``{"class_name": name_or_keras_name, "config": {...}}`` as written by
                ``keras.saving.serialize_keras_object`` or by hand; or an instance of ``base``,
                returned unchanged.
            **kwargs: Constructor arguments, only with a name.

        Returns:
            An instance of a registered class.
        """
        if isinstance(identifier, self.base):
            if kwargs:
                raise ValueError(
                    f"Constructor arguments {sorted(kwargs)} cannot be applied to an existing "
                    f"{self.family} instance {identifier!r}")
            return identifier
        if isinstance(identifier, str):
            return self.get_class(identifier)(**kwargs)
        if isinstance(identifier, dict):
            if "class_name" not in identifier:
                raise ValueError(
                    f"A {self.family} config dict needs a 'class_name' key (a registered name or "
                    f"a Keras name such as 'zoo>AdditiveAttention'); got keys {sorted(identifier)}")
            class_name = identifier["class_name"]
            config = dict(identifier.get("config") or {})
            config.update(kwargs)
            try:
                if isinstance(class_name, str) and self._maybe_key(class_name) is not None:
                    return self.get_class(class_name).from_config(config)
                obj = keras.saving.deserialize_keras_object({**identifier, "config": config})
            except TypeError as e:
                # Keras turns a constructor's ValueError ("dropout must be in [0, 1)") into a
                # TypeError that starts with the whole config: hand the user the original.
                cause = e
                while cause is not None and not isinstance(cause, ValueError):
                    cause = cause.__cause__ or cause.__context__
                if cause is not None:
                    raise cause from None
                raise
            if not isinstance(obj, self.base):
                raise TypeError(f"{class_name!r} is not a {self.family} ({self.base.__name__})")
            return obj
        raise TypeError(
            f"Cannot interpret {identifier!r} as a {self.family}: pass a name "
            f"({', '.join(self.names())}), a config dict or an instance")

    def _maybe_key(self, name: str) -> Optional[str]:
        key = self._normalise(name)
        key = self._aliases.get(key, key)
        return key if key in self._entries else None

    @staticmethod
    def _normalise(name: str) -> str:
        return name.strip().lower().replace("-", "_")

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and self._maybe_key(name) is not None

    def __iter__(self):
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
