"""Shared configuration helpers: every stage's pydantic config can be read from a TOML file.

Each stage keeps its own config model beside its code (prepare/config.py, train/config.py, ...);
a TOML file may hold one table per stage (`[prepare]`, `[train]`, ...) or the stage's fields at
top level; `portraitist run` reads all the stage tables of one file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo

from portraitist.errors import PortraitistError

C = TypeVar("C", bound=BaseModel)

# the number format a setting asks for; each stage says what `auto` means on which hardware
PrecisionChoice = Literal["auto", "fp32", "bf16", "fp16"]

# the widest seed every consumer takes (numpy's legacy seeding stops at 2**32 - 1); per-request seeds
# derived as seed + 1000 i stay within what torch's generators accept
MAX_SEED = 2**32 - 1


class StageConfig(BaseModel):
    """Base of every stage's settings: an unknown (e.g. misspelt) setting is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

    # settings that change how a stage runs (where, how fast, how often it saves), not what it makes:
    # `portraitist run` resumes a stage when only these changed
    how_not_what: ClassVar[frozenset[str]] = frozenset()

    def output_settings(self) -> dict[str, Any]:
        """The settings the stage's output depends on, as JSON values (what WS/run.json records)."""
        return self.model_dump(mode="json", exclude=set(self.how_not_what))


class PluggableConfig(StageConfig):
    """Settings that a plug-in may add to, declaring each as a field of the class would be
    (`add_setting`): the synthetic world adds its `world` table to `evaluate` and `world_judges` to
    `rank` (world/settings.py). An added setting is read from the stage's TOML table, validated,
    dumped and copied like the class's own fields, and read with `setting(name)`; a name nobody
    declared is still an error."""

    # extra="allow" stores only the added settings: _validate_added refuses every other unknown name
    model_config = ConfigDict(extra="allow")
    added: ClassVar[type[BaseModel]]  # the added settings as a model of their own: its fields are theirs
    _added_fields: ClassVar[dict[str, tuple[Any, FieldInfo]]]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls._added_fields = {}
        cls.added = create_model(f"{cls.__name__}Added", __config__=ConfigDict(extra="forbid"))

    @classmethod
    def add_setting(cls, name: str, annotation: Any, field: FieldInfo) -> None:
        """Declare setting `name` of type `annotation`; `field` is pydantic's Field(default, description=...)."""
        if name in cls.model_fields:
            raise ValueError(f"{cls.__name__} has a setting {name!r} of its own")
        cls._added_fields[name] = (annotation, field)
        cls.added = create_model(
            f"{cls.__name__}Added", __config__=ConfigDict(extra="forbid"), **cls._added_fields
        )

    @model_validator(mode="before")
    @classmethod
    def _validate_added(cls, values: Any) -> Any:
        """The added settings validated (missing ones at their default), other unknown names refused."""
        if not isinstance(values, dict):
            return values
        own = {name: value for name, value in values.items() if name in cls.model_fields}
        added = cls.added.model_validate({k: v for k, v in values.items() if k not in cls.model_fields})
        return {**own, **dict(added)}

    def setting(self, name: str) -> Any:
        """An added setting's value (its default in a config made before the plug-in declared it)."""
        extra = self.__pydantic_extra__ or {}
        if name in extra:
            return extra[name]
        return self.added.model_fields[name].get_default(call_default_factory=True)


def setting_names(model: type[BaseModel]) -> set[str]:
    """The settings `model` takes: its fields, and those plug-ins added."""
    added = model.added.model_fields if issubclass(model, PluggableConfig) else {}
    return set(model.model_fields) | set(added)


def updated(config: C, **changes: Any) -> C:
    """A copy of `config` with `changes`, validated (pydantic's model_copy would take any value)."""
    return type(config).model_validate({**config.model_dump(), **changes})


def validation_problems(exc: ValidationError) -> str:
    """Each problem as `field: what is wrong`, without echoing the values given (they may be secrets)."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors())


def load_config(model: type[C], path: Path | None, section: str, /, **overrides: Any) -> C:
    """Build a stage config from defaults, an optional TOML file, then explicit overrides.

    The first three are positional-only, so a stage may have fields named model, path or section.

    Overrides that are None (a CLI option the user did not give) are ignored.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PortraitistError(f"Cannot read config file {path}: {exc}") from exc
        if section in document:
            values.update(document[section])
        else:  # the stage's fields at top level (for `run`, its per-stage tables are fields too)
            values.update({k: v for k, v in document.items() if k in setting_names(model)})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise PortraitistError(f"Invalid {section} settings: {validation_problems(exc)}") from exc
