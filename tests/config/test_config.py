from __future__ import annotations

from pathlib import Path

import pytest

from lamina.config import load_settings
from lamina.errors import ConfigError


def test_defaults_and_toml_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lamina.toml").write_text('data_dir = "/srv/lamina"\n[chunking]\nchunk_tokens = 200\n')
    monkeypatch.delenv("LAMINA_DATA_DIR")
    s = load_settings()
    assert s.data_dir == Path("/srv/lamina")
    assert s.chunking.chunk_tokens == 200
    assert s.chunking.overlap_tokens == 32
    monkeypatch.setenv("LAMINA_CHUNKING__CHUNK_TOKENS", "128")
    assert load_settings().chunking.chunk_tokens == 128  # environment beats the file


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "lamina.toml").write_text("[chunking]\nchunk_tokenz = 200\n")
    with pytest.raises(ConfigError, match=r"chunking\.chunk_tokenz"):
        load_settings()


def test_bad_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_SEARCH__K", "-3")
    with pytest.raises(ConfigError, match=r"search\.k"):
        load_settings()


def test_overlap_must_be_below_half_the_budget(tmp_path: Path) -> None:
    (tmp_path / "lamina.toml").write_text("[chunking]\nchunk_tokens = 64\noverlap_tokens = 40\n")
    with pytest.raises(ConfigError, match="overlap_tokens"):
        load_settings()


def test_malformed_toml_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "lamina.toml").write_text("[chunking\n")
    with pytest.raises(ConfigError):
        load_settings()


def test_missing_explicit_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAMINA_CONFIG", "/nonexistent/lamina.toml")
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()
