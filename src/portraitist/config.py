"""Shared configuration helpers: every stage's pydantic config can be read from a TOML file, and
its fields say which settings a rerun, a resumed training or a resumed evaluation must match.

Each stage keeps its own config model beside its code (prepare/config.py, train/config.py, ...);
a TOML file may hold one table per stage (`[prepare]`, `[train]`, ...) or the stage's fields at
top level; `portraitist run` reads all the stage tables of one file. The CLI's options are these
fields too (cli/options.py).
"""

from __future__ import annotations

import tomllib
from enum import StrEnum
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


class Role(StrEnum):
    """Why a setting is left out of a fingerprint: the settings a rerun, a resumed training or a resumed
    evaluation must match. A field is marked with its role as `name: Annotated[type, Role.RUNTIME]`; a
    field without one shapes what its stage makes and is in every fingerprint, so a new setting is
    compared until someone decides it need not be."""

    RUNTIME = "runtime"  # where and how fast a stage runs, how often it saves or reports: in no fingerprint
    LENGTH = "length"  # when training stops: a checkpoint carries on to any length
    SAVED_AS = "saved_as"  # the form the final weights are saved in: checkpoints and measurements precede it
    START = "start"  # where the weights start from: a checkpoint holds the weights it gave
    SELECTION = "selection"  # which results are kept or compared, not what any one of them is


# each fingerprint with the roles it ignores
RERUN = frozenset({Role.RUNTIME})  # a stage's output: `portraitist run` redoes a stage when it changed
RESUME = frozenset({Role.RUNTIME, Role.LENGTH, Role.SAVED_AS, Role.START})  # a training checkpoint
EVALUATION = frozenset({Role.RUNTIME, Role.SAVED_AS, Role.SELECTION})  # an evaluation's numbers


def role(field: FieldInfo) -> Role | None:
    """The role a field is marked with, if any."""
    return next((mark for mark in field.metadata if isinstance(mark, Role)), None)


def compared_settings(config: BaseModel, ignoring: frozenset[Role]) -> dict[str, Any]:
    """`config`'s settings as JSON values, less the fields (of nested configs too) whose role is ignored."""
    return config.model_dump(mode="json", exclude=_ignored_fields(type(config), ignoring))


def _ignored_fields(model: type[BaseModel], ignoring: frozenset[Role]) -> dict[str, Any]:
    """pydantic's nested `exclude` for `model`: True per ignored field, a dict per nested config."""
    ignored: dict[str, Any] = {}
    for name, field in setting_fields(model).items():
        nested = isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        if role(field) in ignoring:
            ignored[name] = True
        elif nested and (inner := _ignored_fields(field.annotation, ignoring)):
            ignored[name] = inner
    return ignored


class StageConfig(BaseModel):
    """Base of every stage's settings: an unknown (e.g. misspelt) setting is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

    def output_settings(self) -> dict[str, Any]:
        """The settings the stage's output depends on, as JSON values (what WS/run.json records)."""
        return compared_settings(self, RERUN)


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
        """Declare setting `name` of type `annotation`; `field` is pydantic's
        Field(default, description=...)."""
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


def setting_fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    """The settings `model` takes: its fields, and those plug-ins added."""
    added = model.added.model_fields if issubclass(model, PluggableConfig) else {}
    return {**model.model_fields, **added}


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
            values.update({k: v for k, v in document.items() if k in setting_fields(model)})
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise PortraitistError(f"Invalid {section} settings: {validation_problems(exc)}") from exc
