"""What a Kubernetes pod's postStart hook does to its home: tutorials copied, the apps linked, edits kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from surveyhub.hub.tutorials import main


def test_a_pods_home_gets_tutorials_and_apps_and_keeps_edits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "opt"
    (image / "tutorials").mkdir(parents=True)
    (image / "apps").mkdir()
    (image / "tutorials" / "01-start.ipynb").write_text("{}")
    (image / "tutorials" / "02-next.ipynb").write_text("{}")
    (image / "apps" / "quick-lookup.ipynb").write_text("{}")
    monkeypatch.setenv("SURVEYHUB_TUTORIALS_DIR", str(image / "tutorials"))
    monkeypatch.setenv("SURVEYHUB_APPS_DIR", str(image / "apps"))
    home = tmp_path / "home"
    home.mkdir()

    assert main([str(home)]) == 0
    assert sorted(p.name for p in (home / "tutorials").iterdir()) == ["01-start.ipynb", "02-next.ipynb"]
    assert (home / "apps").resolve() == (image / "apps").resolve()
    assert "2 tutorial(s) copied" in capsys.readouterr().out

    (home / "tutorials" / "01-start.ipynb").write_text('{"edited": true}')
    assert main([str(home)]) == 0  # the next start: nothing copied over the user's edit
    assert (home / "tutorials" / "01-start.ipynb").read_text() == '{"edited": true}'
    assert "0 tutorial(s) copied" in capsys.readouterr().out
    assert main([]) == 2
