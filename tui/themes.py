"""Themes read from the TOML files in themes/, checked before they reach the app.

A theme file looks like:

    name = "nodewb-dark"
    dark = true
    primary = "#4f9fe0"
    background = "#12161c"
    foreground = "#d8dee6"
    error = "#ff5f5f"
    warning = "#ffb454"
    success = "#5fd787"
    # optional: secondary, accent, surface, panel, boost, luminosity_spread, text_alpha, ansi
    [variables]           # optional: any Textual theme variable
    block-cursor-background = "#2d4f73"
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from textual.color import Color, ColorParseError
from textual.theme import Theme

REQUIRED = ("name", "dark", "primary", "background", "foreground", "error", "warning", "success")
COLORS = ("primary", "secondary", "accent", "background", "foreground", "surface", "panel",
          "boost", "error", "warning", "success")
NUMBERS = ("luminosity_spread", "text_alpha")
BOOLS = ("dark", "ansi")
DEFAULT_THEME = "nodewb-dark"


class ThemeError(ValueError):
    """A theme file that cannot be used; the message names the file and the key."""


def themes_dir() -> Path | None:
    """themes/ beside the packages (a checkout or an editable install), else the installed copy."""
    here = Path(__file__).resolve().parent.parent / "themes"
    if here.is_dir():
        return here
    try:
        installed = resources.files("themes")
    except (ModuleNotFoundError, TypeError):
        return None
    path = Path(str(installed))
    return path if path.is_dir() else None


def _color(path: Path, key: str, value: object, ansi: bool) -> str:
    if not isinstance(value, str):
        raise ThemeError(f"{path}: {key} must be a colour string, not {type(value).__name__}")
    if ansi and value.startswith("ansi_"):
        return value
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeError(f"{path}: {key} = {value!r} is not a colour "
                         f"(use #rrggbb, rgb(...), a colour name or ansi_* in an ansi theme)") \
            from None
    return value


def parse_theme(path: Path, data: dict) -> Theme:
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ThemeError(f"{path}: missing {', '.join(missing)}")
    known = set(COLORS) | set(NUMBERS) | set(BOOLS) | {"name", "variables"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ThemeError(f"{path}: unknown key {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(known))})")
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise ThemeError(f"{path}: name must be a non-empty string")
    for key in BOOLS:
        if key in data and not isinstance(data[key], bool):
            raise ThemeError(f"{path}: {key} must be true or false")
    ansi = bool(data.get("ansi", False))
    kwargs: dict = {"name": data["name"], "dark": data["dark"], "ansi": ansi}
    for key in COLORS:
        if key in data:
            kwargs[key] = _color(path, key, data[key], ansi)
    for key in NUMBERS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 <= value <= 1:
                raise ThemeError(f"{path}: {key} must be a number from 0 to 1")
            kwargs[key] = float(value)
    variables = data.get("variables", {})
    if not isinstance(variables, dict):
        raise ThemeError(f"{path}: [variables] must be a table")
    for key, value in variables.items():
        if not isinstance(value, str):
            raise ThemeError(f"{path}: variables.{key} must be a string")
    kwargs["variables"] = dict(variables)
    return Theme(**kwargs)


def load_theme(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ThemeError(f"{path}: not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ThemeError(f"{path}: cannot be read: {err}") from None
    return parse_theme(path, data)


def load_themes(directory: Path | None = None) -> tuple[list[Theme], list[str]]:
    """Every good theme in the folder, and one message per bad file (the app reports them)."""
    directory = directory or themes_dir()
    if directory is None:
        return [], ["no themes/ folder found beside the nodewb packages"]
    themes: list[Theme] = []
    problems: list[str] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            theme = load_theme(path)
        except ThemeError as err:
            problems.append(str(err))
            continue
        if theme.name in seen:
            problems.append(f"{path}: theme name {theme.name!r} is also used by {seen[theme.name]}")
            continue
        seen[theme.name] = path
        themes.append(theme)
    return themes, problems
