"""Theme files and the settings file: validated, reported clearly, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tui.config import Config, load_config, save_theme
from tui.themes import ThemeError, load_theme, load_themes, themes_dir


def test_every_shipped_theme_loads():
    themes, problems = load_themes()
    assert problems == []
    assert len(themes) >= 6
    assert themes_dir() is not None and (themes_dir() / "nodewb-dark.toml").exists()


@pytest.mark.parametrize("body,words", [
    ('name = "x"\ndark = true\nprimary = "#fff"\n', "missing background"),
    ('name = "x"\ndark = true\nprimary = "#fff"\nbackground = "#000"\nforeground = "#fff"\n'
     'error = "#f00"\nwarning = "#ff0"\nsuccess = "not-a-colour"\n', "success = 'not-a-colour'"),
    ('name = "x"\ndark = "yes"\nprimary = "#fff"\nbackground = "#000"\nforeground = "#fff"\n'
     'error = "#f00"\nwarning = "#ff0"\nsuccess = "#0f0"\n', "dark must be true or false"),
    ('name = "x"\ndark = true\nprimary = "#fff"\nbackground = "#000"\nforeground = "#fff"\n'
     'error = "#f00"\nwarning = "#ff0"\nsuccess = "#0f0"\nprimery = "#fff"\n',
     "unknown key primery"),
    ('name = "x\n', "not valid TOML"),
])
def test_a_bad_theme_names_the_file_and_the_key(tmp_path: Path, body: str, words: str):
    path = tmp_path / "broken.toml"
    path.write_text(body)
    with pytest.raises(ThemeError) as err:
        load_theme(path)
    assert str(path) in str(err.value) and words in str(err.value)
    themes, problems = load_themes(tmp_path)
    assert themes == [] and len(problems) == 1 and str(path) in problems[0]


def test_config_round_trip_keeps_the_rest_of_the_file(tmp_path: Path):
    path = tmp_path / "nodewb" / "config.toml"
    assert load_config(path).theme is None
    config = load_config(path)
    assert save_theme(config, "nodewb-light") is None
    assert load_config(path).theme == "nodewb-light"
    path.write_text('# mine\ntheme = "x"\nother = 1\n\n[keys]\n"fleet.down" = "j,down,n"\n')
    config = load_config(path)
    assert config.keys == {"fleet.down": "j,down,n"}
    assert save_theme(config, "nodewb-terminal") is None
    text = path.read_text()
    assert 'theme = "nodewb-terminal"' in text and "# mine" in text and "other = 1" in text
    assert '"fleet.down" = "j,down,n"' in text
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".config.")]


def test_a_malformed_config_is_reported_and_ignored_and_not_overwritten(tmp_path: Path):
    path = tmp_path / "config.toml"
    path.write_text("theme = [unclosed\n")
    config = load_config(path)
    assert config.theme is None and "not valid TOML" in config.problem and str(path) in \
        config.problem
    assert "not saved" in save_theme(config, "nodewb-light")
    assert path.read_text() == "theme = [unclosed\n"


def test_xdg_config_home_is_honoured(tmp_path: Path, monkeypatch):
    from tui.config import config_path

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert config_path() == tmp_path / "nodewb" / "config.toml"


async def test_the_app_reports_a_bad_config_and_starts(tmp_path: Path):
    from tests.test_tui_fleet import lab_records, listed, settle

    path = tmp_path / "config.toml"
    path.write_text("theme = [unclosed\n")
    from tui.app import NodewbApp

    app = NodewbApp(listed(lab_records(5)), clock=lambda: 0.0, config=load_config(path))
    said: list[str] = []
    app.notify = lambda message, **kw: said.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        assert app.theme == "nodewb-dark"
        assert any("not valid TOML" in m and str(path) in m for m in said)


async def test_key_overrides_from_config(tmp_path: Path):
    from tests.test_tui_fleet import lab_records, listed, settle
    from tui.app import NodewbApp

    config = Config(tmp_path / "config.toml", keys={"fleet.down": "n"})
    app = NodewbApp(listed(lab_records(10)), clock=lambda: 0.0, config=config)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(app, pilot)
        await pilot.press("n")
        assert app.fleet.table.cursor == 1
