"""nodewb's settings file: ${XDG_CONFIG_HOME:-~/.config}/nodewb/config.toml.

Only what the TUI needs is read here (the theme, key overrides). A malformed file is reported
and ignored; saving changes one setting in place and keeps everything else in the file.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "nodewb" / "config.toml"


@dataclass
class Config:
    path: Path
    theme: str | None = None
    keys: dict[str, str] = field(default_factory=dict)  # binding id -> keys ("j,down")
    problem: str = ""  # why the file was ignored, worded for the person at the terminal

    @property
    def usable(self) -> bool:
        return not self.problem


def load_config(path: Path | None = None) -> Config:
    path = path or config_path()
    config = Config(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return config
    except (OSError, UnicodeDecodeError) as err:
        config.problem = f"{path} cannot be read ({err}); using defaults"
        return config
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        config.problem = f"{path} is not valid TOML ({err}); using defaults"
        return config
    theme = data.get("theme")
    if theme is not None and not isinstance(theme, str):
        config.problem = f"{path}: theme must be a string; using defaults"
        return config
    keys = data.get("keys", {})
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        config.problem = f"{path}: [keys] must map binding ids to key strings; using defaults"
        return config
    config.theme = theme
    config.keys = dict(keys)
    return config


def _set_top_level(text: str, key: str, value: str) -> str:
    line = f"{key} = {json.dumps(value)}"
    head, sep, tail = ("\n" + text).partition("\n[")
    head = head[1:]
    pattern = re.compile(rf"^{re.escape(key)}\s*=.*$", re.MULTILINE)
    if pattern.search(head):
        head = pattern.sub(lambda _: line, head, count=1)
    else:
        head = line + ("\n" + head if head.strip() else "\n")
    return head + sep + tail


def save_theme(config: Config, theme: str) -> str | None:
    """Remember the theme; returns a problem to report, or None. Written atomically."""
    if config.problem:
        return f"theme not saved: {config.problem}"
    path = config.path
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        new = _set_top_level(text, "theme", theme)
        tomllib.loads(new)  # never write a file we could not read back
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config.", suffix=".toml", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(new)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        return f"theme not saved to {path}: {err}"
    config.theme = theme
    return None
