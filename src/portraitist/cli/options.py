"""Command-line options made from config fields: a setting's help, default and range are its field's.

A stage's pydantic config is the one place a setting is declared; `setting(Model, "name")` turns a
field into a typer option whose help is the field's description followed by the field's default (as
typer writes a default, `[default: 128]`), whose bounds are the field's `ge`/`le`, and whose choices
(shown where typer shows the type) are the field's `Literal` values. The option's own default stays
None: `load_config` reads None as "not given", so a TOML file's value stands unless the flag is given.

Why a small adapter and not a library: typer has no pydantic integration. pydantic-typer (early
development, and its own README points to pydantic-settings instead) and typer-model-args turn a
whole model into options, every field a flag, with the model's defaults as the options' defaults,
which would override a TOML file's values; pydantic-settings' command-line source parses with
argparse, not typer. The commands here expose a chosen few settings each, under flags of their own
(`-n`, `--unet-lora/--full-unet`), beside options that are no setting at all (`--workspace`,
`--config`); one function over typer's OptionInfo does that.
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Le
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from rich.markup import escape
from typer.models import OptionInfo

MAX_METAVAR = 24  # longest list of choices shown in the type's column; a longer one wraps the table


class SettingOption(OptionInfo):
    """A typer option that stands for one config field (`model.model_fields[name]`)."""

    def __init__(self, model: type[BaseModel], name: str, *flags: str, **options: Any) -> None:
        field = model.model_fields[name]
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} needs a description: it is the option's help")
        bounds = {
            "min": next((m.ge for m in field.metadata if isinstance(m, Ge)), None),
            "max": next((m.le for m in field.metadata if isinstance(m, Le)), None),
        }
        choices = "<" + "|".join(map(str, literal_choices(field))) + ">" if literal_choices(field) else ""
        flags = flags or (f"--{name.replace('_', '-')}",)
        # a flag without an off-form is off unless given: saying so is noise (typer does not either)
        plain_flag = field.get_default() is False and not any("/" in flag for flag in flags)
        super().__init__(
            default=None,
            param_decls=flags,
            help=help_text(field, show_default=not plain_flag),
            show_default=False,  # None means "not given", not the default: help_text shows the field's
            # the choices in place of the type, where they fit the column (else the description names them)
            metavar=choices if 0 < len(choices) <= MAX_METAVAR else None,
            **bounds,
            **options,
        )
        self.model = model
        self.field_name = name


def setting(model: type[BaseModel], name: str, *flags: str, **options: Any) -> Any:
    """The option for `model`'s field `name`, under `flags` (default `--name-with-dashes`); `options`
    are typer.Option's own (e.g. rich_help_panel). Typed Any, as typer.Option is, for use as a default."""
    return SettingOption(model, name, *flags, **options)


def shown_default(field: FieldInfo) -> str | None:
    """The field's default as the option's help shows it; None when there is none to show (None or
    empty: the description says what leaving the setting out does)."""
    value = field.get_default(call_default_factory=True)
    if value is None or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))  # as the option takes a list: comma-separated
    return str(value)


def help_text(field: FieldInfo, show_default: bool = True) -> str:
    """The field's description and its default, escaped for typer's rich help."""
    default = shown_default(field) if show_default else None
    text = escape(field.description or "")
    return text if default is None else f"{text} \\[default: {escape(default)}]"


def literal_choices(field: FieldInfo) -> tuple[Any, ...]:
    """The values of a `Literal[...]` (or `Literal[...] | None`) field; () for any other type."""
    annotation = field.annotation
    if get_origin(annotation) in (Union, types.UnionType):
        annotation = next((a for a in get_args(annotation) if get_origin(a) is Literal), None)
    return get_args(annotation) if get_origin(annotation) is Literal else ()
